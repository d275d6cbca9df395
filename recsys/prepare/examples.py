"""History arrays, training examples, truth tables and user histories (DataFrame -> DataFrame; no actions).

All inputs are the output of :func:`recsys.prepare.split.assign_split` (positive interactions with a
sequence number and a role). Histories are bounded sliding windows (``rowsBetween(-L, -1)``) over a user's
ordered positive interactions, so no row ever sees itself or anything after it, and no per-user Python code
runs. Arrays are left-padded with :data:`recsys.schemas.PAD_ITEM` to length ``L``, most recent item last.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.prepare.split import (
    ROLE,
    ROLE_CONTEXT,
    ROLE_TEST,
    ROLE_TRAIN,
    ROLE_VALIDATION,
    SEQ,
    timestamp_literal,
)
from recsys.schemas import (
    PAD_ITEM,
    TRAIN_EXAMPLES,
    TRUTH,
    USER_HISTORIES,
    Col,
)

_HISTORY_ITEMS = "_history_items"  # unpadded history (oldest first)


def ordered_items(pairs: Column) -> Column:
    """``array<struct<seq, item>>`` -> the items ordered by ``seq`` (robust to collection order)."""
    return F.transform(F.array_sort(pairs), lambda s: s["item"])


def pad_history(items: Column, length: int) -> Column:
    """Left-pad an item array (at most ``length`` long) with PAD_ITEM to exactly ``length``."""
    padding = F.array_repeat(F.lit(PAD_ITEM).cast(T.IntegerType()), F.lit(length) - F.size(items))
    return F.concat(padding, items)


def _pair() -> Column:
    return F.struct(F.col(SEQ).alias("seq"), F.col(Col.ITEM_IDX).alias("item"))


def with_history(prepared: DataFrame, length: int) -> DataFrame:
    """Add ``history`` (padded) and ``history_len``: the ``length`` positive items just before each row.

    Because train items precede validation and test items of the same user in both split strategies, the
    history of a train row contains train items only, while truth rows see everything before them.
    """
    window = Window.partitionBy(Col.USER_IDX).orderBy(SEQ).rowsBetween(-length, -1)
    items = ordered_items(F.collect_list(_pair()).over(window))
    return (
        prepared.withColumn(_HISTORY_ITEMS, items)
        .withColumn(Col.HISTORY, pad_history(F.col(_HISTORY_ITEMS), length))
        .withColumn(Col.HISTORY_LEN, F.size(F.col(_HISTORY_ITEMS)).cast(T.IntegerType()))
        .drop(_HISTORY_ITEMS)
    )


def _conform(frame: DataFrame, schema: T.StructType) -> DataFrame:
    return frame.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def train_examples(history: DataFrame, min_history: int, max_examples_per_user: int) -> DataFrame:
    """One example per train interaction with at least ``min_history`` earlier train items.

    Args:
        history: output of :func:`with_history`.
        min_history: minimum ``history_len`` of a target (1: a user's first train item is no target).
        max_examples_per_user: keep only the most recent examples of each user; 0 = all.
    """
    frame = history.where((F.col(ROLE) == ROLE_TRAIN) & (F.col(Col.HISTORY_LEN) >= min_history))
    if max_examples_per_user > 0:
        newest_first = Window.partitionBy(Col.USER_IDX).orderBy(F.col(SEQ).desc())
        frame = frame.withColumn("_recency", F.row_number().over(newest_first)).where(
            F.col("_recency") <= max_examples_per_user)
    frame = frame.withColumnRenamed(Col.ITEM_IDX, Col.TARGET_ITEM_IDX)
    return _conform(frame, TRAIN_EXAMPLES)


def truth(history: DataFrame, role: str) -> DataFrame:
    """The ``validation`` or ``test`` truth rows (``TRUTH`` schema), except those with an empty history."""
    if role not in (ROLE_VALIDATION, ROLE_TEST):
        raise ValueError(f"truth role must be {ROLE_VALIDATION!r} or {ROLE_TEST!r}, not {role!r}")
    return _conform(history.where((F.col(ROLE) == role) & (F.col(Col.HISTORY_LEN) >= 1)), TRUTH)


def train_counts(prepared: DataFrame) -> DataFrame:
    """``item_idx, train_count``: positive train interactions per item (items without any are absent)."""
    return (
        prepared.where(F.col(ROLE) == ROLE_TRAIN)
        .groupBy(Col.ITEM_IDX)
        .agg(F.count(F.lit(1)).cast(T.LongType()).alias("train_count"))
    )


def user_histories(
    interactions: DataFrame, prepared: DataFrame, length: int, test_cutoff: dt.datetime | None,
) -> DataFrame:
    """One row per user with at least one positive interaction before its test item (or the test cutoff).

    ``history``: the user's last ``length`` positive items before the test item (train + validation items;
    for users without a test item, all of them). ``seen_items``: the distinct items of *all* the user's
    interactions (any weight) before the test item (time_cutoff: before ``test_cutoff``), sorted.

    Args:
        interactions: the full ``interactions`` table (every weight).
        prepared: output of :func:`recsys.prepare.split.assign_split`.
        length: L.
        test_cutoff: the time_cutoff test cutoff; ``None`` for leave-last-out.
    """
    before_test = prepared.where(F.col(ROLE).isin(ROLE_TRAIN, ROLE_VALIDATION, ROLE_CONTEXT))
    newest_first = Window.partitionBy(Col.USER_IDX).orderBy(F.col(SEQ).desc())
    histories = (
        before_test.withColumn("_recency", F.row_number().over(newest_first))
        .where(F.col("_recency") <= length)
        .groupBy(Col.USER_IDX)
        .agg(F.max(Col.USER_ID).alias(Col.USER_ID),
             ordered_items(F.collect_list(_pair())).alias(_HISTORY_ITEMS))
        .withColumn(Col.HISTORY, pad_history(F.col(_HISTORY_ITEMS), length))
        .withColumn(Col.HISTORY_LEN, F.size(F.col(_HISTORY_ITEMS)))
    )
    events = interactions.where(F.col(Col.USER_IDX).isNotNull() & F.col(Col.ITEM_IDX).isNotNull()).select(
        Col.USER_IDX, Col.ITEM_IDX, Col.TS
    )
    if test_cutoff is not None:
        earlier = events.where(F.col(Col.TS) < timestamp_literal(test_cutoff))
    else:
        tests = prepared.where(F.col(ROLE) == ROLE_TEST).select(
            Col.USER_IDX, F.col(Col.TS).alias("_test_ts"), F.col(Col.ITEM_IDX).alias("_test_item")
        )
        test_ts, test_item = F.col("_test_ts"), F.col("_test_item")
        ts = F.col(Col.TS)
        strictly_before = (ts < test_ts) | ((ts == test_ts) & (F.col(Col.ITEM_IDX) < test_item))
        earlier = events.join(tests, Col.USER_IDX, "left").where(test_ts.isNull() | strictly_before)
    seen = earlier.groupBy(Col.USER_IDX).agg(F.sort_array(F.collect_set(Col.ITEM_IDX)).alias("seen_items"))
    return _conform(histories.join(seen, Col.USER_IDX, "left"), USER_HISTORIES)
