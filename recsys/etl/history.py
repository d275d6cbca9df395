"""Incremental runs: this batch's events against the ``interactions`` table (DataFrame -> DataFrame, no
actions).

An incremental run judges its batch together with what the table already holds, so the rules see each user's
and item's history rather than the batch's slice of it:

- events another run loaded (same user, item and timestamp) are marked :data:`LOADED_BEFORE` before any rule
  counts events: they are cross-batch duplicates (counted in ``etl_runs``, never quarantined), and a
  re-delivered day is counted once;
- the k-core rule counts a user's (an item's) events in the table with the batch's (:func:`prior_counts`);
- the bot ceiling counts the user's events of the same day in the table with the batch's (:func:`prior_days`).

Committed rows are never judged again: a rule only rejects events the table does not hold. That includes the
rows a previous attempt of this same run appended (a run that failed after its append, re-run): they are marked
:data:`KEPT`, counted by the rules as part of the table, and accepted again (:func:`accept_kept`) without being
appended twice, so the tables stay consistent even when another run committed in between. Events an earlier
batch rejected are not in the table and do not count: splitting events into batches can still change the
decisions of the count-based rules (a user with one event in each of two batches never reaches a 2-core).

Dates: a row's ``event_date`` and ``event_period`` are those of its timestamp in the session time zone every
entry point sets (UTC); the batch's days are computed the same way.

The batch's events are keyed by the raw user id, the table by its pseudonym: the two meet through the batch's
pseudonym map (``user_raw, user_id``, one HMAC per user of the batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from recsys import schemas as S
from recsys.etl.dedup import EVENT_KEY
from recsys.etl.errors import InputError
from recsys.etl.pipeline import GRAIN_FORMATS, event_period

LOADED_BEFORE = "_loaded_before"  # internal marks, not quarantine reasons: another run loaded the event (a
KEPT = "_kept"  # duplicate); this run's previous attempt loaded it (accepted, not appended again)


def require_grain(partition_values: Iterable[Mapping[str, str | None]], grain: str) -> None:
    """Raise :class:`~recsys.etl.errors.InputError` when the table's ``event_period`` partitions (a
    snapshot's partition values, no Spark job) are of another time grain than ``grain``: appends would mix
    layouts, and the history scan, which prunes by period, would miss earlier events."""
    if grain not in GRAIN_FORMATS:
        raise ValueError(f"etl.time_grain must be one of {sorted(GRAIN_FORMATS)}, not {grain!r}")
    width = len(GRAIN_FORMATS[grain])  # yyyy, yyyy-MM, yyyy-MM-dd: the pattern is as long as its values
    other = {v for values in partition_values if (v := values.get(S.Col.EVENT_PERIOD)) and len(v) != width}
    if other:
        raise InputError(
            f"interactions is partitioned by event_period values like {min(other)!r}, but etl.time_grain is "
            f"{grain!r}: an incremental run must use the table's grain (or re-run the whole history in full mode)")


def on_days(rows: DataFrame, days: Row) -> DataFrame:
    """``rows`` (of ``interactions``) dated within ``days`` (:func:`batch_days`). The period bounds prune whole
    partitions, so an incremental run over recent days does not scan the table's history."""
    period, date = F.col(S.Col.EVENT_PERIOD), F.col(S.Col.EVENT_DATE)
    return rows.where(period.between(F.lit(days["first_period"]), F.lit(days["last_period"]))
                      & date.between(F.lit(days["first"]), F.lit(days["last"])))


def batch_days(summary: DataFrame, grain: str) -> DataFrame:
    """One row: ``first, last``, the dates of the batch's first and last passing event, and their
    ``first_period, last_period`` (``event_period`` by ``grain``), from the per-user summary
    (:func:`recsys.etl.pipeline.user_summary`). Dates and strings computed by Spark, not timestamps: collected,
    they do not depend on the driver's time zone."""
    passing = summary.where(F.col("reason").isNull())
    bounds = passing.agg(F.min("first_ts").alias("first"), F.max("last_ts").alias("last"))
    return bounds.select(F.to_date("first").alias("first"), F.to_date("last").alias("last"),
                         event_period(F.col("first"), grain).alias("first_period"),
                         event_period(F.col("last"), grain).alias("last_period"))


def _by_raw_user(rows: DataFrame, batch_users: DataFrame, broadcast: bool) -> DataFrame:
    """``rows`` (with ``user_id``) of the batch's users, with ``user_raw`` instead of ``user_id``."""
    users = F.broadcast(batch_users) if broadcast else batch_users
    return rows.join(users.select("user_raw", S.Col.USER_ID), S.Col.USER_ID).drop(S.Col.USER_ID)


def mark_loaded(events: DataFrame, table_rows: DataFrame, batch_users: DataFrame, run_id: str, partitions: int,
                broadcast_users: bool) -> DataFrame:
    """Passing collapsed events (partitioned by ``user_raw`` into ``partitions``) the table holds ->
    :data:`LOADED_BEFORE` (another run loaded them) or :data:`KEPT` (only this run's previous attempt did).

    Args:
        table_rows: the table's rows, at least those on the batch's days (:func:`on_days`).
        batch_users: ``user_raw, user_id`` of the batch's users.
        broadcast_users: whether ``batch_users`` is small enough to broadcast.

    The table's keys are hash-partitioned by ``user_raw`` like the events, so with
    ``spark.sql.requireAllClusterKeysForCoPartition=false`` the join runs partition by partition (the job sets
    it while it builds the marked events); otherwise Spark shuffles both sides, with the same result.
    """
    other = (F.col(S.Col.RUN_ID) != F.lit(run_id)).cast("int")
    keys = _by_raw_user(table_rows.select(S.Col.USER_ID, F.col(S.Col.ITEM_ID).alias("item_raw"), S.Col.TS,
                                          other.alias("_other")), batch_users, broadcast_users)
    keys = keys.repartition(partitions, "user_raw").groupBy(*EVENT_KEY).agg(F.max("_other").alias("_other"))
    joined = events.join(keys.hint("shuffle_hash"), list(EVENT_KEY), "left")
    held = F.col("reason").isNull() & F.col("_other").isNotNull()
    mark = F.when(F.col("_other") == 1, F.lit(LOADED_BEFORE)).otherwise(F.lit(KEPT))
    return joined.withColumn("reason", F.when(held, mark).otherwise(F.col("reason"))).drop("_other")


def accept_kept(classified: DataFrame) -> DataFrame:
    """:data:`KEPT` events back to accepted (``reason`` null), after the rules (which leave marked rows alone)."""
    return classified.withColumn("reason", F.when(F.col("reason") == F.lit(KEPT), F.lit(None).cast("string"))
                                 .otherwise(F.col("reason")))


def prior_counts(table: DataFrame, batch_users: DataFrame, broadcast_users: bool) -> tuple[DataFrame, DataFrame]:
    """(``user_raw, prior`` of the batch's users, ``item_raw, prior`` of every item): the table's events per user
    and per item, for the k-core rule (a scan of the whole table's user and item columns)."""
    users = _by_raw_user(table.groupBy(S.Col.USER_ID).agg(F.count(F.lit(1)).alias("prior")), batch_users,
                         broadcast_users)
    items = table.groupBy(F.col(S.Col.ITEM_ID).alias("item_raw")).agg(F.count(F.lit(1)).alias("prior"))
    return users, items


def prior_days(table_on_days: DataFrame, batch_users: DataFrame, broadcast_users: bool) -> DataFrame:
    """``user_raw, day, prior``: the table's events per user and day (of :func:`on_days`' rows), for the bot
    ceiling."""
    per_day = table_on_days.groupBy(S.Col.USER_ID, F.col(S.Col.EVENT_DATE).alias("day")).agg(
        F.count(F.lit(1)).alias("prior"))
    return _by_raw_user(per_day, batch_users, broadcast_users)
