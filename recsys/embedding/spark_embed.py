"""Item and user embeddings computed in Spark with a trained model artifact.

The artifact is loaded once per Python worker (a module-level cache keyed by its path) and run in
batches under ``torch.inference_mode()``. Item vectors come from the item tower (cold items, which have no
trained id embedding, from their text alone); user vectors from the user tower over the item vectors of
each user's latest history, resolved against a broadcast item matrix when it is small enough, else by
exploding the histories and joining ``item_embeddings``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.embedding.settings import EmbedConfig
from recsys.schemas import ITEM_EMBEDDINGS, PAD_ITEM, USER_EMBEDDINGS, Col

log = logging.getLogger(__name__)

_MODELS: dict[str, Any] = {}


def cached_model(path: str, torch_threads: int = 0) -> Any:
    """The :class:`~recsys.training.artifact.LoadedModel` at ``path``, loaded once per process."""
    if path not in _MODELS:
        import torch

        from recsys.training.artifact import load_model

        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        _MODELS[path] = load_model(path)
    return _MODELS[path]


def _pad_tokens(lists: Any, width: int) -> np.ndarray:
    out = np.zeros((len(lists), width), dtype=np.int64)
    for i, values in enumerate(lists):
        values = np.asarray(values if values is not None else [], dtype=np.int64)[:width]
        out[i, : len(values)] = values
    return out


def encode_item_frame(pdf: pd.DataFrame, model: Any, model_version: str, batch_size: int) -> pd.DataFrame:
    """Item embeddings of one pandas batch (columns of item_tokens + item_id)."""
    import torch

    width = model.spec.max_text_tokens
    all_ids = _pad_tokens(pdf[Col.INPUT_IDS].tolist(), width)
    all_mask = _pad_tokens(pdf[Col.ATTENTION_MASK].tolist(), width)
    all_idx = pdf[Col.ITEM_IDX].to_numpy(dtype=np.int64)
    # Batches of similar text length: the item tower drops each batch's trailing all-padding columns.
    order = np.argsort(all_mask.sum(1), kind="stable")
    vectors = []
    for start in range(0, len(pdf), batch_size):
        sel = order[start:start + batch_size]
        ids, mask = torch.from_numpy(all_ids[sel]), torch.from_numpy(all_mask[sel])
        vectors.append(model.encode_items(ids, mask, torch.from_numpy(all_idx[sel])).float().numpy())
    matrix = np.zeros((len(pdf), model.spec.embedding_dim), np.float32)
    if vectors:
        matrix[order] = np.concatenate(vectors)
    counts = pdf["train_count"].fillna(0).to_numpy()
    return pd.DataFrame({
        Col.ITEM_IDX: pdf[Col.ITEM_IDX].to_numpy(dtype=np.int32),
        Col.ITEM_ID: pdf[Col.ITEM_ID].to_numpy(dtype=object),
        Col.EMBEDDING: list(matrix.astype(np.float32)),
        "is_cold": counts == 0,
        Col.MODEL_VERSION: model_version,
    })


def item_embeddings(item_tokens: DataFrame, items: DataFrame, artifact_path: str, model_version: str,
                    cfg: EmbedConfig) -> DataFrame:
    """One row per item of ``item_tokens`` (schema ITEM_EMBEDDINGS)."""
    joined = item_tokens.join(items.select(Col.ITEM_IDX, Col.ITEM_ID), on=Col.ITEM_IDX, how="left")
    batch_size, threads = cfg.batch_size, cfg.torch_threads

    def embed(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = cached_model(artifact_path, threads)
        for pdf in frames:
            yield encode_item_frame(pdf, model, model_version, batch_size)

    return joined.mapInPandas(embed, ITEM_EMBEDDINGS)  # type: ignore[arg-type]


def encode_user_batch(model: Any, vectors: np.ndarray, mask: np.ndarray, batch_size: int) -> np.ndarray:
    import torch

    out = []
    for start in range(0, len(vectors), batch_size):
        v = torch.from_numpy(vectors[start:start + batch_size])
        m = torch.from_numpy(mask[start:start + batch_size])
        out.append(model.encode_users(v, m).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.spec.embedding_dim), np.float32)


def _user_frame(pdf: pd.DataFrame, matrix: np.ndarray, model_version: str) -> pd.DataFrame:
    return pd.DataFrame({
        Col.USER_IDX: pdf[Col.USER_IDX].to_numpy(dtype=np.int32),
        Col.USER_ID: pdf[Col.USER_ID].to_numpy(dtype=object),
        Col.EMBEDDING: list(matrix.astype(np.float32)),
        Col.MODEL_VERSION: model_version,
    })


def _users_from_matrix(item_matrix: Callable[[], np.ndarray], artifact_path: str, model_version: str,
                       cfg: EmbedConfig) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    batch_size, threads = cfg.batch_size, cfg.torch_threads

    def embed(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = cached_model(artifact_path, threads)
        matrix, known = item_matrix(), None
        known = ~np.isnan(matrix[:, 0]) if len(matrix) else np.zeros(0, bool)
        for pdf in frames:
            rows = [np.asarray(h if h is not None else [], dtype=np.int64) for h in pdf[Col.HISTORY]]
            width = max((len(r) for r in rows), default=1) or 1
            hist = np.full((len(rows), width), PAD_ITEM, dtype=np.int64)
            for i, r in enumerate(rows):
                if len(r):
                    hist[i, width - len(r):] = r
            inside = (hist >= 0) & (hist < len(matrix))
            mask = inside & known[np.where(inside, hist, 0)] if len(matrix) else inside
            keep = mask.any(axis=1)
            if not keep.any():
                continue
            hist, mask, pdf = hist[keep], mask[keep], pdf[keep]
            vectors = np.nan_to_num(matrix[np.where(mask, hist, 0)]).astype(np.float32)
            yield _user_frame(pdf, encode_user_batch(model, vectors, mask, batch_size), model_version)

    return embed


def _users_from_join(artifact_path: str, model_version: str, cfg: EmbedConfig,
                     ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    batch_size, threads = cfg.batch_size, cfg.torch_threads

    def embed(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = cached_model(artifact_path, threads)
        d = model.spec.embedding_dim
        for pdf in frames:
            seqs = [
                np.stack([np.asarray(v, np.float32) for v in s]) if len(s) else np.zeros((0, d), np.float32)
                for s in pdf["vectors"]
            ]
            width = max((len(s) for s in seqs), default=1) or 1
            vectors = np.zeros((len(seqs), width, d), dtype=np.float32)
            mask = np.zeros((len(seqs), width), dtype=bool)
            for i, s in enumerate(seqs):
                if len(s):
                    vectors[i, width - len(s):] = s
                    mask[i, width - len(s):] = True
            yield _user_frame(pdf, encode_user_batch(model, vectors, mask, batch_size), model_version)

    return embed


def user_embeddings(histories: DataFrame, items: DataFrame, artifact_path: str, model_version: str,
                    cfg: EmbedConfig) -> DataFrame:
    """One row per user with at least one embedded history item (schema USER_EMBEDDINGS).

    ``items`` is the item embeddings DataFrame (item_idx, embedding).
    """
    spark = histories.sparkSession
    histories = histories.select(Col.USER_IDX, Col.USER_ID, Col.HISTORY)
    n_items, dim = items.agg(F.max(Col.ITEM_IDX), F.max(F.size(Col.EMBEDDING))).first() or (None, None)
    size_mb = ((n_items or 0) + 1) * (dim or 0) * 4 / 2**20
    if n_items is not None and size_mb <= cfg.broadcast_item_matrix_max_mb:
        matrix = np.full((int(n_items) + 1, int(dim or 0)), np.nan, dtype=np.float32)
        for row in items.select(Col.ITEM_IDX, Col.EMBEDDING).toLocalIterator():
            matrix[row[0]] = row[1]
        shared = spark.sparkContext.broadcast(matrix)
        log.info("user histories resolved against a broadcast %d x %d item matrix", *matrix.shape)
        embed = _users_from_matrix(lambda: shared.value, artifact_path, model_version, cfg)
        return histories.mapInPandas(embed, USER_EMBEDDINGS)  # type: ignore[arg-type]
    log.info("user histories resolved by exploding and joining item_embeddings (%.0f MiB)", size_mb)
    exploded = histories.select(Col.USER_IDX, Col.USER_ID,
                                F.posexplode(Col.HISTORY).alias("pos", Col.ITEM_IDX))
    exploded = exploded.where(F.col(Col.ITEM_IDX) != PAD_ITEM)
    joined = exploded.join(items.select(Col.ITEM_IDX, Col.EMBEDDING), on=Col.ITEM_IDX, how="inner")
    grouped = joined.groupBy(Col.USER_IDX, Col.USER_ID).agg(
        F.sort_array(F.collect_list(F.struct("pos", Col.EMBEDDING))).alias("seq"))
    grouped = grouped.select(Col.USER_IDX, Col.USER_ID,
                             F.transform("seq", lambda x: x[Col.EMBEDDING]).alias("vectors"))
    embed = _users_from_join(artifact_path, model_version, cfg)
    return grouped.mapInPandas(embed, USER_EMBEDDINGS)  # type: ignore[arg-type]
