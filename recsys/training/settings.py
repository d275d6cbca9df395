"""Config section ``train`` (conf/base/train.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Model and training settings. Extended by the training implementation."""

    num_workers: int = 1
