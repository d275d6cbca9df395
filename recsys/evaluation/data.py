"""The evaluation's view of the data: what each model may train on, what it must not recommend, item stats.

Definitions (lazy DataFrame transforms, no I/O):

* Positive interactions: ``weight > 0`` with user, item and time (as ``recsys prepare`` uses them).
* ``train``: each user's positive interactions strictly before the user's first held-out row (validation
  or test truth) in the ``(ts, item_idx)`` order; every positive interaction of users without held-out rows.
  With a time-cutoff split only those before the training period's end (``validation_cutoff``, else
  ``cutoff``), as ``recsys prepare`` trains on: a user without held-out rows (all of whose events came
  later) must not bring later events into the baselines' fit. Baselines are tuned by fitting on ``train``
  and ranking the validation items.
* ``before_test``: each user's positive interactions strictly before the test truth row (train + the
  validation item + any context rows): the same information the model's scoring history holds; with a
  time-cutoff split only those before ``cutoff``. With ``evaluate.refit_with_validation`` (default) the
  baselines are refitted on it for the test split.
* Seen items (never recommended, for every model alike): for the test split ``user_histories.seen_items``
  (what ``recsys score`` excludes); for the validation split the user's items in ``train``.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.prepare.split import timestamp_literal
from recsys.schemas import Col

SEEN = "seen_items"
IS_COLD = "is_cold"
POP_PCT = "popularity_percentile"
LOG_POP = "log_popularity"
TRAIN_COUNT = "train_count"


def positives(interactions: DataFrame) -> DataFrame:
    """``user_idx, item_idx, ts, weight`` of the positive interactions."""
    return interactions.where(
        (F.col(Col.WEIGHT) > 0) & F.col(Col.USER_IDX).isNotNull() & F.col(Col.ITEM_IDX).isNotNull()
        & F.col(Col.TS).isNotNull()
    ).select(Col.USER_IDX, Col.ITEM_IDX, Col.TS, Col.WEIGHT)


def _before() -> Column:
    """Rows strictly before the cutoff row of their user in (ts, item_idx) order (or with no cutoff)."""
    ts, item = F.col(Col.TS), F.col(Col.ITEM_IDX)
    cut_ts, cut_item = F.col("_cut_ts"), F.col("_cut_item")
    return cut_ts.isNull() | (ts < cut_ts) | ((ts == cut_ts) & (item < cut_item))


def _cut(frame: DataFrame, truths: list[DataFrame]) -> DataFrame:
    rows = truths[0].select(Col.USER_IDX, Col.ITEM_IDX, Col.TS)
    for other in truths[1:]:
        rows = rows.unionByName(other.select(Col.USER_IDX, Col.ITEM_IDX, Col.TS))
    first = rows.groupBy(Col.USER_IDX).agg(F.min(F.struct(Col.TS, Col.ITEM_IDX)).alias("c")).select(
        Col.USER_IDX, F.col(f"c.{Col.TS}").alias("_cut_ts"), F.col(f"c.{Col.ITEM_IDX}").alias("_cut_item")
    )
    joined = frame.join(first, Col.USER_IDX, "left")
    return joined.where(_before()).drop("_cut_ts", "_cut_item")


def _until(frame: DataFrame, end: dt.datetime | None) -> DataFrame:
    return frame if end is None else frame.where(F.col(Col.TS) < timestamp_literal(end))


def train_interactions(positive: DataFrame, validation: DataFrame | None, test: DataFrame,
                       end: dt.datetime | None = None) -> DataFrame:
    """Positive interactions before each user's first held-out row, and before ``end`` (a time-cutoff split's
    end of training; see module docstring)."""
    return _until(_cut(positive, [t for t in (validation, test) if t is not None]), end)


def before_test_interactions(positive: DataFrame, test: DataFrame, end: dt.datetime | None = None) -> DataFrame:
    """Positive interactions before each user's test row, and before ``end`` (a time-cutoff split's test
    cutoff)."""
    return _until(_cut(positive, [test]), end)


def seen_from(interactions: DataFrame) -> DataFrame:
    """``user_idx, seen_items`` (distinct item indexes) from interaction rows."""
    return interactions.groupBy(Col.USER_IDX).agg(F.array_sort(F.collect_set(Col.ITEM_IDX)).alias(SEEN))


def item_stats(catalog: DataFrame, fit: DataFrame, item_tokens: DataFrame | None) -> DataFrame:
    """``item_idx, train_count, is_cold, popularity_percentile, log_popularity`` for every catalog item.

    Popularity is the number of distinct users with a positive ``fit`` interaction; the percentile is its
    percent rank among all catalog items (0 least popular, 1 most). Cold items: ``item_tokens.train_count``
    is 0 (as ``recsys prepare`` counted it) when that table is given, else no ``fit`` interaction.
    """
    counts = fit.groupBy(Col.ITEM_IDX).agg(F.countDistinct(Col.USER_IDX).alias("_n"))
    items = catalog.select(Col.ITEM_IDX).distinct().join(counts, Col.ITEM_IDX, "left").select(
        Col.ITEM_IDX, F.coalesce(F.col("_n"), F.lit(0)).cast("long").alias(TRAIN_COUNT)
    )
    if item_tokens is not None:
        cold = item_tokens.select(Col.ITEM_IDX, (F.col(TRAIN_COUNT) == 0).alias(IS_COLD))
        items = items.join(cold, Col.ITEM_IDX, "left").withColumn(
            IS_COLD, F.coalesce(F.col(IS_COLD), F.col(TRAIN_COUNT) == 0)
        )
    else:
        items = items.withColumn(IS_COLD, F.col(TRAIN_COUNT) == 0)
    # percent_rank over the catalog without a single-partition window over all items: the rank of a count
    # is the number of items with a smaller count, so window only over the distinct counts (a few thousand
    # rows at most, whatever the catalog size) and broadcast that back.
    per_count = items.groupBy(TRAIN_COUNT).agg(F.count(F.lit(1)).alias("_items"))
    below = F.sum("_items").over(Window.orderBy(TRAIN_COUNT).rowsBetween(Window.unboundedPreceding, -1))
    total = F.sum("_items").over(Window.partitionBy(F.lit(1)))
    ranks = per_count.select(
        TRAIN_COUNT,
        F.when(total > 1, F.coalesce(below, F.lit(0)) / (total - 1)).otherwise(F.lit(0.0)).alias(POP_PCT),
    )
    return items.join(F.broadcast(ranks), TRAIN_COUNT).select(
        Col.ITEM_IDX, TRAIN_COUNT, IS_COLD, POP_PCT, F.log1p(F.col(TRAIN_COUNT)).alias(LOG_POP),
    )
