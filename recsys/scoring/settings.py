"""Config section ``score`` (conf/base/score.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Explanation = Literal["cosine", "dot", "none"]


@dataclass(frozen=True)
class ScoreConfig:
    """Scoring settings (``recsys score``)."""

    # K: recommendations per user.
    top_k: int = 10
    # Never recommend items the user already interacted with (user_histories.seen_items).
    exclude_seen: bool = True
    # Optional table of item_idx rows that must not be recommended to anyone (e.g. unavailable items).
    exclude_items_table: str | None = None
    # Item matrix up to this size (items x dim x 4 bytes) is broadcast; above it the catalog is split into
    # blocks of at most this size, cross-joined with the user batches, and per-block top-Ks merged exactly.
    broadcast_max_bytes: int = 134_217_728
    # Users scored together in one matrix multiply (memory per task: user_batch_size x item_chunk_size x 4 B).
    user_batch_size: int = 2048
    # Items per matrix-multiply chunk inside a block.
    item_chunk_size: int = 8192
    # Similarity that picks the history item explaining each recommendation.
    explanation: Explanation = "cosine"
    # Model version to score; null: the newest in the models table that has item embeddings.
    model_version: str | None = None
    # Spark partitions of the user side; 0: enough for ~8 batches per partition, at least the parallelism.
    user_partitions: int = 0
    # BLAS threads per Python worker (each Spark task is one core); 0 leaves the library default.
    blas_threads: int = 1
