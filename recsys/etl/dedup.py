"""Duplicate removal (DataFrame -> DataFrame, no actions).

Exact duplicates and rows with the same user, item and timestamp are one event: the first by
(source file, raw record) is kept, the others are marked :data:`DUPLICATE` (counted in ``etl_runs``, not
quarantined). The window is partitioned by user first, so after :func:`by_user` it needs no other shuffle.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

DUPLICATE = "__duplicate__"  # internal marker, never a quarantine reason
KEY = ("user_raw", "item_raw", "ts")


def by_user(frame: DataFrame) -> DataFrame:
    """Hash-partition by user: the per-user windows that follow reuse this one shuffle."""
    return frame.repartition("user_raw")


def mark_duplicates(validated: DataFrame) -> DataFrame:
    """Rows passing the row rules that repeat an earlier row's (user, item, ts) get reason DUPLICATE."""
    ok = F.col("reason").isNull()
    order = (Window.partitionBy(*KEY, F.col("reason").isNull())
             .orderBy("source_file", F.array_join("raw_parts", "\u001f")))
    return validated.withColumn(
        "reason", F.when(ok & (F.row_number().over(order) > 1), F.lit(DUPLICATE)).otherwise(F.col("reason")))
