"""Config section ``score`` (conf/base/score.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreConfig:
    """Scoring settings. Extended by the scoring implementation."""

    top_k: int = 10
