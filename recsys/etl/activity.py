"""Rules that need aggregates over many rows: bots, items missing from the catalog, k-core.

Each function only changes ``reason`` of rows that still pass (reason null); no actions. Bots are found by
aggregates over the collapsed events (see :mod:`recsys.etl.dedup`), which are partitioned by user: neither
the aggregates nor the join back shuffle or sort the events. Only users with more events in all than the
daily ceiling can be bots (:func:`bot_candidates`, from the per-user summary the job computes anyway); the
per-day count only looks at theirs, and the job skips the rule when there are none. The catalog is a small
dimension that is broadcast. The k-core rule (off by default) uses windows by user and by item.

Rows rejected here (:data:`LATE_REASONS`) no longer carry their raw record: the job recovers it for the
quarantine table with :func:`recsys.etl.dedup.recover_raw`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.etl import reasons as R

LATE_REASONS = (R.BOT_USER, R.BELOW_K_CORE)


def _set_reason(condition: Column, code: str) -> Column:
    return F.when(F.col("reason").isNull() & condition, F.lit(code)).otherwise(F.col("reason"))


def _passing() -> Column:
    return F.when(F.col("reason").isNull(), F.lit(1))


def bot_candidates(summary: DataFrame, max_events_per_day: int, prior: DataFrame | None = None) -> DataFrame:
    """``user_raw`` of the users who could be bots: more than ``max_events_per_day`` passing events in all.

    Args:
        summary: per (``user_raw``, ``reason``) ``events`` before this rule
            (:func:`recsys.etl.pipeline.user_summary` of the collapsed events); small, partitioned by user.
        prior: (incremental runs) ``user_raw, day, prior``: the events earlier runs loaded on the batch's days
            (:func:`recsys.etl.history.prior_days`), which count too.
    """
    passing = summary.where(F.col("reason").isNull()).select("user_raw", "events")
    if prior is not None:
        totals = prior.groupBy("user_raw").agg(F.sum("prior").alias("prior"))
        passing = passing.join(totals, "user_raw", "left").select(
            "user_raw", (F.col("events") + F.coalesce(F.col("prior"), F.lit(0))).alias("events"))
    return passing.where(F.col("events") > F.lit(max_events_per_day)).select("user_raw")


def bot_users(events: DataFrame, max_events_per_day: int, candidates: DataFrame,
              prior: DataFrame | None = None) -> DataFrame:
    """``user_raw`` of users with more than ``max_events_per_day`` passing events (duplicates not counted) on
    one day, among ``candidates`` (:func:`bot_candidates`: nobody else can be one); partitioned like
    ``events``. The events of the candidates are found by a hash join partition by partition and aggregated by
    user: no shuffle of the events, and the per-day aggregation only sees the candidates' events.

    Args:
        prior: as for :func:`bot_candidates`: a day's earlier events count with the batch's (only days with
            events in the batch can make a bot: the others were judged before).
    """
    passing = events.where(F.col("reason").isNull()).join(candidates.hint("shuffle_hash"), "user_raw",
                                                          "left_semi")
    per_day = passing.groupBy("user_raw", F.to_date("ts").alias("_day")).agg(F.count(F.lit(1)).alias("_n"))
    if prior is not None:
        earlier = prior.select("user_raw", F.col("day").alias("_day"), "prior")
        per_day = per_day.join(earlier, ["user_raw", "_day"], "left").select(
            "user_raw", "_day", (F.col("_n") + F.coalesce(F.col("prior"), F.lit(0))).alias("_n"))
    busiest = per_day.groupBy("user_raw").agg(F.max("_n").alias("_busiest"))
    return busiest.where(F.col("_busiest") > F.lit(max_events_per_day)).select("user_raw")


def mark_bots(events: DataFrame, bots: DataFrame) -> DataFrame:
    """All passing events of ``bots`` (from :func:`bot_users`) -> bot_user.

    A hash join of the events with the (usually tiny) bot frame, partition by partition: both are
    partitioned by user, so the events are neither shuffled nor sorted.
    """
    flagged = bots.select("user_raw", F.lit(True).alias("_bot")).hint("shuffle_hash")
    joined = events.join(flagged, "user_raw", "left")
    return joined.withColumn("reason", _set_reason(F.col("_bot").isNotNull(), R.BOT_USER)).drop("_bot")


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


def mark_k_core(frame: DataFrame, min_user: int, min_item: int, iterations: int,
                prior_users: DataFrame | None = None, prior_items: DataFrame | None = None) -> DataFrame:
    """Iteratively mark rows of users with < ``min_user`` or items with < ``min_item`` passing rows.

    Args:
        prior_users: (incremental runs) ``user_raw, prior``: events of the user that earlier runs loaded, which
            count with the batch's passing rows (:func:`recsys.etl.history.prior_counts`).
        prior_items: the same per ``item_raw``.
    """
    if min_user <= 1 and min_item <= 1:
        return frame
    prior_u, prior_i = F.lit(0), F.lit(0)
    if prior_users is not None:
        frame = frame.join(prior_users.select("user_raw", F.col("prior").alias("_pu")).hint("shuffle_hash"),
                           "user_raw", "left")
        prior_u = F.coalesce(F.col("_pu"), F.lit(0))
    if prior_items is not None:
        frame = frame.join(prior_items.select("item_raw", F.col("prior").alias("_pi")), "item_raw", "left")
        prior_i = F.coalesce(F.col("_pi"), F.lit(0))
    for _ in range(iterations):
        n_user = F.count(_passing()).over(Window.partitionBy("user_raw")) + prior_u
        n_item = F.count(_passing()).over(Window.partitionBy("item_raw")) + prior_i
        frame = frame.withColumn("_nu", n_user).withColumn("_ni", n_item)
        small = (F.col("_nu") < min_user) | (F.col("_ni") < min_item)
        frame = frame.withColumn("reason", _set_reason(small, R.BELOW_K_CORE)).drop("_nu", "_ni")
    return frame.drop("_pu", "_pi")
