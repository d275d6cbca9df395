"""Train / validation / test split of positive interactions (DataFrame -> DataFrame; no I/O, no actions).

Only positive implicit feedback (``weight > 0``; NaN, which Spark orders above every number, is not
positive) becomes training examples, truth items or history items; negative or zero-weight interactions
(e.g. low ratings mapped to weight 0) only count as "seen" items for exclusion at scoring (see
:mod:`recsys.prepare.examples`).

Ties in time are broken deterministically: a user's interactions are ordered by ``(ts, item_idx)`` (then
``weight`` descending and ``event_type``, so that exact duplicates are interchangeable). "Before" always means
earlier in this order.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.prepare.settings import SplitConfig
from recsys.schemas import Col

# Internal columns added by this module (dropped before anything is written).
SEQ = "_seq"          # 1-based position of the positive interaction in the user's ordered sequence
ROLE = "_role"        # one of the ROLE_* values below

ROLE_TRAIN = "train"            # training target candidate and history item
ROLE_VALIDATION = "validation"  # the user's validation truth item
ROLE_TEST = "test"              # the user's test truth item
ROLE_CONTEXT = "context"        # history for the test truth only (time_cutoff: later validation-period items)

_COLUMNS = (Col.USER_IDX, Col.USER_ID, Col.ITEM_IDX, Col.TS, Col.WEIGHT, Col.EVENT_TYPE)


def sequence_order() -> list[Column]:
    """The deterministic order of one user's interactions."""
    return [F.col(Col.TS).asc(), F.col(Col.ITEM_IDX).asc(), F.col(Col.WEIGHT).desc_nulls_last(),
            F.col(Col.EVENT_TYPE).asc_nulls_first()]


def positive_interactions(interactions: DataFrame) -> DataFrame:
    """Interactions with ``weight > 0`` and a user, item and time; only the columns preparation needs."""
    return interactions.where(
        (F.col(Col.WEIGHT) > 0) & ~F.isnan(F.col(Col.WEIGHT))
        & F.col(Col.USER_IDX).isNotNull() & F.col(Col.ITEM_IDX).isNotNull() & F.col(Col.TS).isNotNull()
    ).select(*_COLUMNS)


def timestamp_literal(value: dt.datetime) -> Column:
    """A UTC timestamp literal independent of the JVM and Python local time zones."""
    micros = (value - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    return F.timestamp_micros(F.lit(micros))


def assign_split(positives: DataFrame, split: SplitConfig, min_user_interactions: int) -> DataFrame:
    """Add :data:`SEQ` and :data:`ROLE` to positive interactions; drop those after each user's test item.

    Args:
        positives: output of :func:`positive_interactions`.
        split: the strategy and cutoffs.
        min_user_interactions: leave_last_out only: users with fewer positive interactions are all train.
    """
    user = Window.partitionBy(Col.USER_IDX)
    ordered = user.orderBy(*sequence_order())
    frame = positives.withColumn(SEQ, F.row_number().over(ordered))
    if split.strategy == "none":
        return frame.withColumn(ROLE, F.lit(ROLE_TRAIN))
    if split.strategy == "leave_last_out":
        n = F.count(F.lit(1)).over(user)
        from_end = n - F.col(SEQ)  # 0 = last
        eligible = n >= F.lit(min_user_interactions)
        role = (
            F.when(eligible & (from_end == 0), F.lit(ROLE_TEST))
            .when(eligible & (from_end == 1), F.lit(ROLE_VALIDATION))
            .otherwise(F.lit(ROLE_TRAIN))
        )
        return frame.withColumn(ROLE, role)
    validation_cutoff, test_cutoff = split.cutoffs()
    assert test_cutoff is not None
    test_start = timestamp_literal(test_cutoff)
    train_end = timestamp_literal(validation_cutoff) if validation_cutoff is not None else test_start
    period = (
        F.when(F.col(Col.TS) < train_end, F.lit(0))
        .when(F.col(Col.TS) < test_start, F.lit(1))
        .otherwise(F.lit(2))
    )
    frame = frame.withColumn("_period", period)
    # Rank within the period: the period's first interaction (in sequence order) is the truth item.
    rank_in_period = F.row_number().over(Window.partitionBy(Col.USER_IDX, "_period").orderBy(F.col(SEQ)))
    frame = frame.withColumn("_rank", rank_in_period)
    role = (
        F.when(F.col("_period") == 0, F.lit(ROLE_TRAIN))
        .when((F.col("_period") == 1) & (F.col("_rank") == 1), F.lit(ROLE_VALIDATION))
        .when(F.col("_period") == 1, F.lit(ROLE_CONTEXT))
        .when(F.col("_rank") == 1, F.lit(ROLE_TEST))
    )
    return frame.withColumn(ROLE, role).where(F.col(ROLE).isNotNull()).drop("_period", "_rank")
