"""Config section ``embed`` (conf/base/embed.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbedConfig:
    """Embedding job settings."""

    # Rows per model call inside each Spark Python worker.
    batch_size: int = 256
    # User histories are resolved against a broadcast item-embedding matrix when it is at most this many
    # MiB; above it the job explodes histories and joins item_embeddings instead.
    broadcast_item_matrix_max_mb: int = 256
    # Torch threads per Spark Python worker (0: torch's default).
    torch_threads: int = 1
