"""Helpers for the ETL tests: tiny input files, running the ETL, reading tables back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from recsys.config import load_config
from recsys.etl.run_spec import RunSpec
from recsys.jobs.etl import run_etl
from recsys.lakehouse import TableStore

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = "unit-test-key"
RUN_DATE = dt.date(2024, 6, 30)


def write(path: Path, text: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode(encoding))
    return path


def run(spark: SparkSession, lakehouse: Path, input_dir: Path, source: str = "movielens", mode: str = "full",
        run_date: dt.date = RUN_DATE, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], TableStore]:
    cfg = load_config("test", conf_dir=REPO_ROOT / "conf", overrides=list(overrides), lakehouse=str(lakehouse))
    store = TableStore(spark, cfg.storage)
    path = str(input_dir)
    spec = RunSpec(source, path, run_date, mode)
    return run_etl(store, cfg.etl, spec), store


def rows(store: TableStore, name: str, drop: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    frame = store.read(name)
    frame = frame.select(*[c for c in frame.columns if c not in drop])
    return sorted(tuple(str(v) for v in r) for r in frame.collect())
