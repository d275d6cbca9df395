"""The one Spark adapter from recommendation lists to metric rows (every model goes through it).

Per-user metrics are computed by :func:`recsys.evaluation.metrics.user_metrics` inside ``mapInPandas``; each
task emits only partial sums per (model, metric, K), which Spark adds up. Catalog coverage and popularity
are Spark aggregates. Only the final aggregate rows reach the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.evaluation.data import IS_COLD, LOG_POP, POP_PCT
from recsys.evaluation.metrics import user_metrics
from recsys.schemas import Col

MODEL = "model"
RANKED = "ranked"
RELEVANT = "relevant"
COLD = "cold_relevant"

METRIC_ROWS = T.StructType([
    T.StructField(MODEL, T.StringType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("k", T.IntegerType(), False),
    T.StructField("value", T.DoubleType(), True),
    T.StructField("users_evaluated", T.LongType(), False),
])

_PARTIAL = T.StructType([
    T.StructField(MODEL, T.StringType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("k", T.IntegerType(), False),
    T.StructField("total", T.DoubleType(), False),
    T.StructField("n", T.LongType(), False),
])


def _partial_sums(ks: Sequence[int]) -> Callable[[Iterable[pd.DataFrame]], Iterable[pd.DataFrame]]:
    def run(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sums: dict[tuple[str, str, int], list[float]] = {}
        for frame in frames:
            for model, ranked, relevant, cold in zip(frame[MODEL], frame[RANKED], frame[RELEVANT], frame[COLD],
                                                     strict=True):
                ranked_list = [] if ranked is None else [int(x) for x in ranked]
                rel = [] if relevant is None else [int(x) for x in relevant]
                if not rel:
                    continue
                cold_list = [] if cold is None else [int(x) for x in cold]
                for (metric, k), value in user_metrics(ranked_list, rel, ks, cold_list).items():
                    acc = sums.setdefault((model, metric, k), [0.0, 0.0])
                    acc[0] += value
                    acc[1] += 1
        rows = [(m, metric, k, total, int(n)) for (m, metric, k), (total, n) in sums.items()]
        yield pd.DataFrame(rows, columns=["model", "metric", "k", "total", "n"])

    return run


def ranked_lists(recs: DataFrame) -> DataFrame:
    """``model, user_idx, ranked`` (item indexes by rank) from rows ``model, user_idx, item_idx, rank``."""
    grouped = recs.groupBy(MODEL, Col.USER_IDX).agg(
        F.sort_array(F.collect_list(F.struct(Col.RANK, Col.ITEM_IDX))).alias("_r")
    )
    return grouped.select(MODEL, Col.USER_IDX, F.transform("_r", lambda s: s[Col.ITEM_IDX]).alias(RANKED))


def evaluate_rankings(
    spark: SparkSession,
    recs: DataFrame,
    truth: DataFrame,
    items: DataFrame,
    models: Sequence[str],
    ks: Sequence[int],
) -> DataFrame:
    """Metric rows (``model, metric, k, value, users_evaluated``) of every model on one split.

    Args:
        recs: ``model, user_idx, item_idx, rank`` (at least ``max(ks)`` per user where possible).
        truth: ``user_idx, item_idx`` held-out rows; every truth user counts for every model (a user with no
            recommendations scores 0).
        items: catalog stats from :func:`recsys.evaluation.data.item_stats` (cold flag, popularity).
        models: the model names to evaluate.
    """
    ks = sorted(set(ks))
    model_frame = F.broadcast(spark.createDataFrame([(m,) for m in models], f"{MODEL} string"))
    flags = items.select(Col.ITEM_IDX, IS_COLD)
    relevant = truth.select(Col.USER_IDX, Col.ITEM_IDX).join(flags, Col.ITEM_IDX, "left").groupBy(
        Col.USER_IDX
    ).agg(
        F.collect_set(Col.ITEM_IDX).alias(RELEVANT),
        F.collect_set(F.when(F.col(IS_COLD), F.col(Col.ITEM_IDX))).alias(COLD),
    )
    users = relevant.select(Col.USER_IDX)
    in_scope = recs.join(users, Col.USER_IDX, "left_semi").where(F.col(Col.RANK) <= max(ks))
    base = relevant.crossJoin(model_frame).join(ranked_lists(in_scope), [MODEL, Col.USER_IDX], "left")
    partial = base.select(MODEL, RANKED, RELEVANT, COLD).mapInPandas(_partial_sums(ks), _PARTIAL)
    ranking = partial.groupBy(MODEL, "metric", "k").agg(
        (F.sum("total") / F.sum("n")).alias("value"), F.sum("n").cast("long").alias("users_evaluated")
    )
    return ranking.unionByName(_catalog_metrics(spark, in_scope, items, users, ks))


def _catalog_metrics(spark: SparkSession, recs: DataFrame, items: DataFrame, users: DataFrame,
                     ks: Sequence[int]) -> DataFrame:
    """Coverage (distinct recommended items / catalog size) and mean popularity of recommended items."""
    k_frame = F.broadcast(spark.createDataFrame([(k,) for k in ks], "k int"))
    at_k = recs.crossJoin(k_frame).where(F.col(Col.RANK) <= F.col("k")).join(
        items.select(Col.ITEM_IDX, POP_PCT, LOG_POP), Col.ITEM_IDX, "left"
    )
    catalog = items.agg(F.count(F.lit(1)).alias("_catalog"))
    n_users = users.agg(F.count(F.lit(1)).alias("_users"))
    agg = at_k.groupBy(MODEL, "k").agg(
        F.countDistinct(Col.ITEM_IDX).alias("_distinct"),
        F.avg(F.coalesce(F.col(POP_PCT), F.lit(0.0))).alias(POP_PCT),
        F.avg(F.coalesce(F.col(LOG_POP), F.lit(0.0))).alias(LOG_POP),
    ).crossJoin(catalog).crossJoin(n_users)
    metric = F.explode(F.array(
        F.struct(F.lit("coverage").alias("metric"), (F.col("_distinct") / F.col("_catalog")).alias("value")),
        F.struct(F.lit(POP_PCT).alias("metric"), F.col(POP_PCT).alias("value")),
        F.struct(F.lit(LOG_POP).alias("metric"), F.col(LOG_POP).alias("value")),
    )).alias("m")
    return agg.select(MODEL, "k", "_users", metric).select(
        MODEL, F.col("m.metric").alias("metric"), F.col("k").cast("int").alias("k"),
        F.col("m.value").cast("double").alias("value"), F.col("_users").cast("long").alias("users_evaluated"),
    )


def histogram(frame: DataFrame, column: str, lo: float, hi: float, bins: int,
              by: str | None = None) -> DataFrame:
    """Counts per equal-width bin of ``column`` in [lo, hi] (values outside are clipped), optionally per ``by``."""
    width = (hi - lo) / bins if hi > lo else 1.0
    idx = F.least(F.greatest(F.floor((F.col(column) - F.lit(lo)) / F.lit(width)), F.lit(0)), F.lit(bins - 1))
    keys = ([by] if by else []) + [idx.cast("int").alias("bin")]
    return frame.where(F.col(column).isNotNull()).groupBy(*keys).count()


def bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi if hi > lo else lo + bins, bins + 1)
