"""Rules that need aggregates over many rows: bots, items missing from the catalog, k-core.

Each function only changes ``reason`` of rows that still pass (reason null); no actions, and no
self-joins: per-user aggregates are window functions over the frame partitioned by user (one shuffle and
one sort, shared with de-duplication: see :mod:`recsys.etl.dedup`); the catalog is a small dimension that is
broadcast.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.etl import reasons as R
from recsys.etl.dedup import USER_DAY


def _set_reason(condition: Column, code: str) -> Column:
    return F.when(F.col("reason").isNull() & condition, F.lit(code)).otherwise(F.col("reason"))


def _passing() -> Column:
    return F.when(F.col("reason").isNull(), F.lit(1))


def mark_bots(frame: DataFrame, max_events_per_day: int) -> DataFrame:
    """All rows of users with more than ``max_events_per_day`` passing events on one day -> bot_user."""
    per_day = F.count(_passing()).over(Window.partitionBy(*USER_DAY))  # sorted by the dedup window already
    busiest = F.max("_per_day").over(Window.partitionBy("user_raw"))
    marked = frame.withColumn("_per_day", per_day).withColumn("_busiest", busiest)
    return marked.withColumn("reason", _set_reason(F.col("_busiest") > F.lit(max_events_per_day),
                                                   R.BOT_USER)).drop("_per_day", "_busiest")


def mark_missing_items(frame: DataFrame, catalog_ids: DataFrame | None, policy: str) -> DataFrame:
    """Rows whose item is not in ``catalog_ids`` (column item_raw) -> item_not_in_catalog, if the policy
    is ``quarantine``; with ``keep`` they pass (the item gets empty text)."""
    if policy not in ("quarantine", "keep"):
        raise ValueError(f"etl.missing_item_policy must be quarantine or keep, not {policy!r}")
    if policy == "keep" or catalog_ids is None:
        return frame
    known = F.broadcast(catalog_ids.select("item_raw").distinct().withColumn("_known", F.lit(True)))
    joined = frame.join(known, "item_raw", "left")
    return joined.withColumn("reason", _set_reason(F.col("_known").isNull(), R.UNKNOWN_ITEM)).drop("_known")


def mark_k_core(frame: DataFrame, min_user: int, min_item: int, iterations: int) -> DataFrame:
    """Iteratively mark rows of users with < ``min_user`` or items with < ``min_item`` passing rows."""
    if min_user <= 1 and min_item <= 1:
        return frame
    for _ in range(iterations):
        n_user = F.count(_passing()).over(Window.partitionBy("user_raw"))
        n_item = F.count(_passing()).over(Window.partitionBy("item_raw"))
        frame = frame.withColumn("_nu", n_user).withColumn("_ni", n_item)
        small = (F.col("_nu") < min_user) | (F.col("_ni") < min_item)
        frame = frame.withColumn("reason", _set_reason(small, R.BELOW_K_CORE)).drop("_nu", "_ni")
    return frame
