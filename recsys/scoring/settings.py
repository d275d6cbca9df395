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
    # Users packed into one scoring row (one copy of the item block travels to Python per batch, so larger
    # batches move less data; the kernel multiplies them in slabs of kernel_block_bytes).
    user_batch_size: int = 8192
    # Most items per matrix-multiply chunk inside a block.
    item_chunk_size: int = 65536
    # Memory of one score matrix (user slab x item chunk x 4 B) in the kernel: small enough to stay in cache
    # between the multiply and the top-K selection.
    kernel_block_bytes: int = 16_777_216
    # Similarity that picks the history item explaining each recommendation.
    explanation: Explanation = "cosine"
    # Model version to score; null: the newest in the models table that has item embeddings.
    model_version: str | None = None
    # Spark partitions of the user side; 0: enough for ~8 batches per partition, at least the parallelism.
    user_partitions: int = 0
    # BLAS threads per Python worker (each Spark task is one core); 0 leaves the library default.
    blas_threads: int = 1
