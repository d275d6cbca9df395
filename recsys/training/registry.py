"""The ``models`` Delta table: one appended row per trained model."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import Row

from recsys.lakehouse import TableStore
from recsys.schemas import MODELS, Col, Tables
from recsys.training.trainer import TrainResult


def _numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def record_model(store: TableStore, result: TrainResult, base_model: str, embedding_dim: int,
                 git_commit: str, config: dict[str, Any]) -> int:
    """Append the model's row to ``models``; returns the committed table version."""
    row = Row(**{
        Col.MODEL_VERSION: result.model_version,
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "artifact_path": result.artifact_path,
        "base_model": base_model,
        "embedding_dim": embedding_dim,
        "metrics": _numeric_metrics(result.metrics),
        "data_versions": {k: int(v) for k, v in result.data_versions.items()},
        "git_commit": git_commit,
        "config_json": json.dumps(config, sort_keys=True, default=str),
    })
    frame = store.spark.createDataFrame([row], MODELS)
    return store.write(frame, Tables.MODELS, mode="append")


def latest_model(store: TableStore, model_version: str | None = None) -> tuple[str, str]:
    """``(model_version, artifact_path)`` of the given version, or of the newest row of ``models``."""
    store.require(Tables.MODELS)
    frame = store.read(Tables.MODELS).select(Col.MODEL_VERSION, "artifact_path", "created_at")
    if model_version is not None:
        rows = frame.where(frame[Col.MODEL_VERSION] == model_version).collect()
        if not rows:
            raise ValueError(f"model version {model_version!r} is not in the models table")
    else:
        rows = frame.orderBy(frame["created_at"].desc(), frame[Col.MODEL_VERSION].desc()).limit(1).collect()
        if not rows:
            raise ValueError("the models table is empty: run `recsys train` first")
    return str(rows[0][Col.MODEL_VERSION]), str(rows[0]["artifact_path"])
