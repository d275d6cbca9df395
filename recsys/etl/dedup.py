"""Duplicate removal (DataFrame -> DataFrame, no actions).

Exact duplicates and rows with the same user, item and timestamp are one event: the first by
(source file, raw record) is kept, the others are marked :data:`DUPLICATE` (counted in ``etl_runs``, not
quarantined).

One shuffle, one sort: :func:`by_user` hash-partitions by user; the de-duplication window is partitioned by
``(user_raw, event_date, item_raw, ts, ...)`` (``event_date`` is a function of ``ts``, so adding it changes no
group), so its sort ``user_raw, event_date, item_raw, ts, ...`` also satisfies the later per-(user, day) and
per-user windows of :mod:`recsys.etl.activity`: Spark plans neither another exchange nor another sort.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

DUPLICATE = "__duplicate__"  # internal marker, never a quarantine reason
KEY = ("user_raw", "item_raw", "ts")
# The shared sort prefix: the dedup window's partition columns start with these (see module docstring).
USER_DAY = ("user_raw", "event_date")


def by_user(frame: DataFrame, partitions: int | None = None) -> DataFrame:
    """Hash-partition by user (into ``partitions``, default ``spark.sql.shuffle.partitions``): the per-user
    windows that follow, and the joins on ``user_raw`` after them, reuse this one shuffle."""
    return frame.repartition(partitions, "user_raw") if partitions else frame.repartition("user_raw")


def mark_duplicates(validated: DataFrame) -> DataFrame:
    """Rows passing the row rules that repeat an earlier row's (user, item, ts) get reason DUPLICATE."""
    ok = F.col("reason").isNull()
    order = (Window.partitionBy(*USER_DAY, "item_raw", "ts", F.col("reason").isNull())
             .orderBy("source_file", F.array_join("raw_parts", "\u001f")))
    return validated.withColumn(
        "reason", F.when(ok & (F.row_number().over(order) > 1), F.lit(DUPLICATE)).otherwise(F.col("reason")))
