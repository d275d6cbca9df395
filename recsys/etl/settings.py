"""Config section ``etl`` (conf/base/etl.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EtlConfig:
    """ETL settings. Extended by the ETL implementation."""

    source: str = "movielens"
