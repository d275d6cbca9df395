"""Duplicate removal by hash aggregation (DataFrame -> DataFrame, no actions).

Rows passing the row rules with the same user, item and timestamp are one event: :func:`collapse` turns them
into one row by a hash aggregation (no sort). Its payload (rating, weight, event type) is that of the copy
with the smallest ``tie``, a 64-bit hash of the raw record (deterministic whatever the file order);
``copies`` counts them, and the ``copies - 1`` others are duplicates (counted in ``etl_runs``, not
quarantined).

Rows failing a row rule keep their raw record (``source_file``, ``raw_parts``) in the grouping key, so they
only collapse with identical raw rows of the same file, and :func:`expand_copies` gives each its quarantine
row back. Passing rows drop their raw record before the shuffle (:func:`narrow`), which keeps the shuffle and
the cached frame narrow; the few that a later rule rejects (a bot's events, k-core) get theirs back from a
second read of the input (:func:`recover_raw`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

EVENT_KEY = ("user_raw", "item_raw", "ts")
GROUP_KEY = (*EVENT_KEY, "reason", "source_file", "raw_parts")


def _types(event_types: Sequence[str]) -> Column:
    return F.array(*[F.lit(t) for t in event_types])


def narrow(validated: DataFrame, event_types: Sequence[str]) -> DataFrame:
    """The columns the per-user pass needs: the raw record only for rows that fail a row rule, the event type
    as its 1-based position in ``event_types`` (a fixed-width aggregation buffer), and ``tie``."""
    failing = F.col("reason").isNotNull()
    return validated.select(
        "user_raw", "item_raw", "ts", "reason",
        F.when(failing, F.col("source_file")).alias("source_file"),
        F.when(failing, F.col("raw_parts")).alias("raw_parts"),
        "rating", "weight",
        F.array_position(_types(event_types), F.col("event_type")).cast("int").alias("event_code"),
        F.xxhash64("raw_parts").alias("tie"))


def by_user(frame: DataFrame, partitions: int | None = None) -> DataFrame:
    """Hash-partition by user (into ``partitions``, default ``spark.sql.shuffle.partitions``): the collapse,
    the per-user aggregates and the joins on ``user_raw`` after it reuse this one shuffle."""
    return frame.repartition(partitions, "user_raw") if partitions else frame.repartition("user_raw")


def collapse(frame: DataFrame) -> DataFrame:
    """One row per event (passing rows) or per distinct raw row (failing rows), with ``copies``.

    The grouping key starts with ``user_raw``, so the aggregation needs no shuffle after :func:`by_user`.
    """
    return frame.groupBy(*GROUP_KEY).agg(
        F.min_by("rating", "tie").alias("rating"), F.min_by("weight", "tie").alias("weight"),
        F.min_by("event_code", "tie").alias("event_code"), F.min("tie").alias("tie"),
        F.count(F.lit(1)).alias("copies"))


def event_type(code: Column, event_types: Sequence[str]) -> Column:
    """The event type string back from :func:`narrow`'s code."""
    return F.when(code > 0, F.try_element_at(_types(event_types), code))


def expand_copies(frame: DataFrame) -> DataFrame:
    """Each collapsed row ``copies`` times (failing rows: one quarantine row per input row)."""
    return frame.withColumn("_copy", F.explode(F.array_repeat(F.lit(1), F.col("copies").cast("int")))).drop(
        "_copy")


def recover_raw(passing: DataFrame, rejected: DataFrame) -> DataFrame:
    """The raw record of each event a later rule rejected.

    Args:
        passing: the validated rows that passed the row rules, read again (same rules, same inputs).
        rejected: collapsed events (``user_raw, item_raw, ts, tie, reason``).

    Returns:
        ``user_raw, item_raw, ts, tie, reason, source_file, raw_parts``: one row per rejected event, the copy
        that :func:`collapse` kept (identical copies in several files: the first file).
    """
    rows = passing.select(*EVENT_KEY, F.xxhash64("raw_parts").alias("tie"), "source_file", "raw_parts")
    found = rows.join(rejected.select(*EVENT_KEY, "tie", "reason"), [*EVENT_KEY, "tie"])
    return found.groupBy(*EVENT_KEY, "tie", "reason").agg(
        F.min("source_file").alias("source_file"), F.min_by("raw_parts", "source_file").alias("raw_parts"))
