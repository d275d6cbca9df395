"""Config section ``embed`` (conf/base/embed.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbedConfig:
    """Embedding settings. Extended by the embedding implementation."""

    batch_size: int = 256
