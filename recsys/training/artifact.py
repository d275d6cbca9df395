"""Loading a published model artifact (the public API used by the embedding and scoring jobs).

Artifact layout (``<lakehouse>/models/<model_version>/``)::

    config.json          {"model": ModelSpec fields, "train": the train config used}
    encoder_config.json  the Hugging Face encoder config (architecture only)
    model.safetensors    all weights: encoder, projection, id embeddings (+ id_known), user tower
    tokenizer files      tokenizer.json, vocab.txt, tokenizer_config.json, ... (AutoTokenizer)
    metrics.json         loss_curve [[step, loss]], val_ndcg_curve [[step, ndcg@10]], samples_per_s, ...
    data_versions.json   input table -> Delta version used
    git_commit.txt       commit of the code that trained it

Vectors from :meth:`RecModel.encode_items` and :meth:`RecModel.encode_users` are L2-normalised; the
recommendation score is their dot product (cosine similarity). Training divided it by ``temperature``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import torch

from recsys.lakehouse.filesystems import resolve_filesystem
from recsys.training import checkpointing as ck
from recsys.training.encoder import encoder_from_config
from recsys.training.model import RecModel
from recsys.training.towers import ModelSpec


@dataclass
class LoadedModel:
    """A model ready for inference: eval mode, on CPU."""

    model: RecModel
    tokenizer: Any  # None when the artifact has no tokenizer files
    spec: ModelSpec
    metadata: dict[str, Any]  # config.json, metrics, data_versions, git_commit
    path: str

    @property
    def embedding_dim(self) -> int:
        return self.spec.embedding_dim

    def encode_items(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     item_idx: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode_items(input_ids, attention_mask, item_idx)

    def encode_users(self, history_vectors: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode_users(history_vectors, history_mask)


def _local_copy(path: str) -> str:
    """A local directory with the artifact's files (remote URIs are downloaded to a temp directory)."""
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" not in path:
        return path
    from pyarrow import fs as pafs

    filesystem, base = resolve_filesystem(path)
    local = tempfile.mkdtemp(prefix="recsys-model-")
    pafs.copy_files(base, local, source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return local


def _read_json(directory: str, name: str) -> Any:
    target = os.path.join(directory, name)
    if not os.path.exists(target):
        return None
    with open(target, encoding="utf-8") as fh:
        return json.load(fh)


def build_model(directory: str) -> tuple[RecModel, ModelSpec, dict[str, Any]]:
    config = _read_json(directory, ck.CONFIG)
    if config is None:
        raise FileNotFoundError(f"{directory} is not a model artifact: no {ck.CONFIG}")
    spec = ModelSpec(**config["model"])
    encoder = encoder_from_config(_read_json(directory, ck.ENCODER_CONFIG))
    model = RecModel(encoder, spec)
    ck.load_weights(model, os.path.join(directory, ck.WEIGHTS))
    model.eval()
    return model, spec, config


def load_model(path: str) -> LoadedModel:
    """Load the artifact at ``path`` (local directory, ``file://`` or any pyarrow-supported URI)."""
    directory = _local_copy(path)
    model, spec, config = build_model(directory)
    tokenizer = None
    if os.path.exists(os.path.join(directory, "tokenizer_config.json")):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
    git = os.path.join(directory, "git_commit.txt")
    commit = None
    if os.path.exists(git):
        with open(git, encoding="utf-8") as fh:
            commit = fh.read().strip()
    metadata = {
        "config": config,
        "metrics": _read_json(directory, ck.METRICS) or {},
        "data_versions": _read_json(directory, "data_versions.json") or {},
        "git_commit": commit,
    }
    return LoadedModel(model.to("cpu"), tokenizer, spec, metadata, path)


def save_model(directory: str, model: RecModel, tokenizer: Any = None,
               extra_config: dict[str, Any] | None = None) -> None:
    """Write ``model`` (and ``tokenizer``) in the artifact layout (without metrics/provenance files)."""
    encoder_config = model.item_tower.encoder.config.to_dict()  # type: ignore[union-attr, operator]
    ck.write_model_files(directory, model.spec, encoder_config, model.state_dict(), extra_config)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
