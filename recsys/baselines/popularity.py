"""Most-popular baseline: items by number of distinct users in the fit data, seen items excluded."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.baselines.dense import dense_top_k
from recsys.schemas import Col
from recsys.scoring.recommend import ScoringPlan


def most_popular(fit: DataFrame, users: DataFrame, k: int, plan: ScoringPlan) -> DataFrame:
    """Top-``k`` most popular unseen items for each of ``users`` (``user_idx, seen_items``).

    Ties in popularity go to the smaller item_idx (the kernel's order); scores are user counts. ``plan`` lays
    out the catalog as one-element vectors (:func:`recsys.baselines.dense.dense_top_k`).
    """
    counts = fit.groupBy(Col.ITEM_IDX).agg(F.countDistinct(Col.USER_IDX).cast("float").alias("_n"))
    items = counts.select(Col.ITEM_IDX, F.array(F.col("_n")).alias(Col.EMBEDDING))
    ones = users.select(Col.USER_IDX, F.array(F.lit(1.0).cast("float")).alias(Col.EMBEDDING), "seen_items")
    return dense_top_k(ones, items, k, plan)
