"""Exact top-K for baselines whose scores are dot products (popularity, ALS factors): the scoring kernel."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.schemas import Col
from recsys.scoring.blocks import SEEN, KernelSpec
from recsys.scoring.recommend import ScoringPlan, top_k

_ONE_BLOCK = 2**31 - 1


def dense_top_k(users: DataFrame, items: DataFrame, k: int, partitions: int, batch_size: int = 2048,
                block_rows: int = _ONE_BLOCK) -> DataFrame:
    """``user_idx, item_idx, score, rank``: top-``k`` by dot product, excluding each user's seen items.

    Args:
        users: ``user_idx, embedding, seen_items`` (``seen_items`` may be null).
        items: ``item_idx, embedding``.
        block_rows: item_idx range per block; the default broadcasts one block (small catalogs).
    """
    frame = users.select(
        Col.USER_IDX, F.lit(None).cast("string").alias(Col.USER_ID), Col.EMBEDDING,
        F.coalesce(F.col(SEEN), F.array().cast("array<int>")).alias(SEEN),
        F.array().cast("array<int>").alias(Col.HISTORY),
    )
    broadcast = block_rows == _ONE_BLOCK
    plan = ScoringPlan(broadcast=broadcast, block_rows=block_rows, num_blocks=1 if broadcast else 16,
                       user_partitions=max(1, partitions))
    spec = KernelSpec(k=k, user_batch_size=batch_size, explanation="none", blas_threads=1)
    return top_k(frame, items, plan, spec).select(Col.USER_IDX, Col.ITEM_IDX, Col.SCORE, Col.RANK)
