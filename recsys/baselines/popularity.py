"""Most-popular baseline: items by number of distinct users in the fit data, seen items excluded."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.baselines.dense import dense_top_k
from recsys.schemas import Col


def most_popular(fit: DataFrame, users: DataFrame, k: int, partitions: int) -> DataFrame:
    """Top-``k`` most popular unseen items for each of ``users`` (``user_idx, seen_items``).

    Ties in popularity go to the smaller item_idx (the kernel's order); scores are user counts.
    """
    counts = fit.groupBy(Col.ITEM_IDX).agg(F.countDistinct(Col.USER_IDX).cast("float").alias("_n"))
    items = counts.select(Col.ITEM_IDX, F.array(F.col("_n")).alias(Col.EMBEDDING))
    ones = users.select(Col.USER_IDX, F.array(F.lit(1.0).cast("float")).alias(Col.EMBEDDING), "seen_items")
    return dense_top_k(ones, items, k, partitions)
