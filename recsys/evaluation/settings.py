"""Config section ``evaluate`` (conf/base/evaluate.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation settings. Extended by the evaluation implementation."""

    ks: tuple[int, ...] = (10,)
