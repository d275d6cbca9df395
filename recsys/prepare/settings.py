"""Config section ``prepare`` (conf/base/prepare.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrepareConfig:
    """Training-data preparation settings. Extended by the prepare implementation."""

    history_length: int = 50
