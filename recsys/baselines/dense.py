"""Exact top-K for baselines whose scores are dot products (popularity, ALS factors): the scoring kernel."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.schemas import Col
from recsys.scoring.blocks import SEEN, KernelSpec
from recsys.scoring.recommend import ScoringPlan, top_k

DENSE_BATCH = 2048  # users per scoring batch (plan_scoring sizes user partitions by it)


def dense_top_k(users: DataFrame, items: DataFrame, k: int, plan: ScoringPlan,
                batch_size: int = DENSE_BATCH) -> DataFrame:
    """``user_idx, item_idx, score, rank``: top-``k`` by dot product, excluding each user's seen items.

    Args:
        users: ``user_idx, embedding, seen_items`` (``seen_items`` may be null).
        items: ``item_idx, embedding``.
        plan: catalog layout from :func:`recsys.scoring.recommend.plan_scoring` for the items' vector length:
            one broadcast block for small catalogs, blocks joined to the users otherwise (a broadcast value
            is one binary cell, which cannot pass 2 GiB).
    """
    frame = users.select(
        Col.USER_IDX, F.lit(None).cast("string").alias(Col.USER_ID), Col.EMBEDDING,
        F.coalesce(F.col(SEEN), F.array().cast("array<int>")).alias(SEEN),
        F.array().cast("array<int>").alias(Col.HISTORY),
    )
    spec = KernelSpec(k=k, user_batch_size=batch_size, explanation="none", blas_threads=1)
    return top_k(frame, items, plan, spec).select(Col.USER_IDX, Col.ITEM_IDX, Col.SCORE, Col.RANK)
