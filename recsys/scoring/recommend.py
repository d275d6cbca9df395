"""Top-K recommendations for every user: planning, the exact blocked/broadcast top-K, the output table.

All functions are lazy DataFrame transforms except :func:`plan_scoring`, which is pure arithmetic on sizes the
job measured.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys.schemas import RECOMMENDATIONS, Col
from recsys.scoring.blocks import (
    EXPL_ITEM,
    EXPL_SIM,
    HISTORY_VECS,
    SEEN,
    KernelSpec,
    pack_items,
    pack_users,
    score_blocks,
)
from recsys.scoring.settings import ScoreConfig

_ONE_BLOCK = 2**31 - 1
_BATCHES_PER_PARTITION = 8


@dataclass(frozen=True)
class ScoringPlan:
    """How the catalog is laid out for one scoring run."""

    broadcast: bool
    block_rows: int  # item_idx range per block
    num_blocks: int
    user_partitions: int


def plan_scoring(num_users: int, num_items: int, max_item_idx: int, dim: int, config: ScoreConfig,
                 parallelism: int) -> ScoringPlan:
    """Broadcast the item matrix when it fits in ``broadcast_max_bytes``, else blocks of at most that size."""
    item_bytes = num_items * dim * 4
    batches = math.ceil(max(num_users, 1) / config.user_batch_size)
    partitions = config.user_partitions or max(parallelism, math.ceil(batches / _BATCHES_PER_PARTITION))
    partitions = max(1, min(partitions, batches))
    if item_bytes <= config.broadcast_max_bytes:
        return ScoringPlan(True, _ONE_BLOCK, 1, partitions)
    block_rows = max(1, config.broadcast_max_bytes // max(dim * 4, 1))
    return ScoringPlan(False, block_rows, math.ceil((max_item_idx + 1) / block_rows), partitions)


def scoring_users(user_embeddings: DataFrame, histories: DataFrame | None) -> DataFrame:
    """``user_idx, user_id, embedding, seen_items, history`` of every user with an embedding (arrays not null)."""
    user_id = F.col(Col.USER_ID) if Col.USER_ID in user_embeddings.columns else F.lit(None).cast("string")
    users = user_embeddings.where(F.col(Col.EMBEDDING).isNotNull()).select(
        Col.USER_IDX, user_id.alias(Col.USER_ID), Col.EMBEDDING)
    empty = F.array().cast("array<int>")
    if histories is None:
        return users.select("*", empty.alias(SEEN), empty.alias(Col.HISTORY))
    hist = histories.select(
        Col.USER_IDX,
        F.coalesce(F.col(SEEN), empty).alias(SEEN),
        F.coalesce(F.filter(Col.HISTORY, lambda x: x >= 0), empty).alias(Col.HISTORY),
    )
    joined = users.join(hist, Col.USER_IDX, "left")
    return joined.select(
        Col.USER_IDX, Col.USER_ID, Col.EMBEDDING, F.coalesce(F.col(SEEN), empty).alias(SEEN),
        F.coalesce(F.col(Col.HISTORY), empty).alias(Col.HISTORY),
    )


def _with_history_vectors(users: DataFrame, items: DataFrame) -> DataFrame:
    """Attach the vectors of each user's history items (history items without a vector are dropped)."""
    exploded = users.select(Col.USER_IDX, F.posexplode(Col.HISTORY).alias("pos", Col.ITEM_IDX))
    vectors = exploded.join(items.select(Col.ITEM_IDX, Col.EMBEDDING), Col.ITEM_IDX)
    grouped = vectors.groupBy(Col.USER_IDX).agg(
        F.sort_array(F.collect_list(F.struct("pos", Col.ITEM_IDX, Col.EMBEDDING))).alias("h")
    )
    base = users.drop(Col.HISTORY).join(grouped, Col.USER_IDX, "left")
    return base.select(
        Col.USER_IDX, Col.USER_ID, Col.EMBEDDING, SEEN,
        F.coalesce(F.transform("h", lambda s: s[Col.ITEM_IDX]), F.array().cast("array<int>")).alias(Col.HISTORY),
        F.coalesce(F.transform("h", lambda s: s[Col.EMBEDDING]),
                   F.array().cast("array<array<float>>")).alias(HISTORY_VECS),
    )


def top_k(
    users: DataFrame,
    items: DataFrame,
    plan: ScoringPlan,
    spec: KernelSpec,
    exclude_seen: bool = True,
    exclude_items: DataFrame | None = None,
) -> DataFrame:
    """Exact top-K per user: ``user_idx, user_id, item_idx, score, rank, explanation_item_idx``,
    ``explanation_similarity``.

    Args:
        users: from :func:`scoring_users` (``user_idx, user_id, embedding, seen_items, history``).
        items: ``item_idx, embedding`` (float vectors of the same length as the users').
        plan: layout from :func:`plan_scoring`.
        exclude_items: ``item_idx`` rows never recommended.
    """
    catalog = items.where(F.col(Col.EMBEDDING).isNotNull()).select(Col.ITEM_IDX, Col.EMBEDDING)
    if exclude_items is not None:
        catalog = catalog.join(exclude_items.select(Col.ITEM_IDX).distinct(), Col.ITEM_IDX, "left_anti")
    # History vectors travel with the users unless the broadcast block holds every history item: blocked
    # catalogs, and excluded items (never recommended, but still what a user saw and may explain a pick).
    packed_history = (not plan.broadcast or exclude_items is not None) and spec.explanation != "none"
    user_side = _with_history_vectors(users, items) if packed_history else users
    # Sorted within each partition, so the same users form the same batches on every run, whatever order the
    # shuffle delivered them in: BLAS rounds a row's dot products differently depending on the other rows of
    # the multiply (its blocking and small-matrix paths), so batches decide the scores' last bits.
    user_side = user_side.repartition(plan.user_partitions, Col.USER_IDX).sortWithinPartitions(Col.USER_IDX)
    batches = pack_users(user_side, spec.user_batch_size, packed_history)
    blocks = pack_items(catalog, plan.block_rows)
    if not plan.broadcast:
        blocks = blocks.repartition(max(plan.num_blocks, 1), "block_id")
    candidates = score_blocks(batches, blocks, spec, exclude_seen, plan.broadcast)
    if plan.broadcast:
        return candidates
    order = Window.partitionBy(Col.USER_IDX).orderBy(F.col(Col.SCORE).desc(), F.col(Col.ITEM_IDX).asc())
    ranked = candidates.withColumn(Col.RANK, F.row_number().over(order))
    return ranked.where(F.col(Col.RANK) <= spec.k).withColumn(Col.RANK, F.col(Col.RANK).cast("int"))


def recommendations_table(
    top: DataFrame,
    item_ids: DataFrame,
    model_version: str,
    run_date: dt.date,
    broadcast_ids: bool = True,
) -> DataFrame:
    """Rows of the ``recommendations`` table (its schema and column order) from :func:`top_k` output.

    Args:
        item_ids: ``item_idx, item_id``.
        broadcast_ids: broadcast the id map (a catalog whose vectors were broadcast); otherwise Spark picks the
            join (a catalog scored in blocks can have an id map too large to broadcast).
    """
    items = item_ids.select(Col.ITEM_IDX, Col.ITEM_ID).distinct()
    if broadcast_ids:
        items = F.broadcast(items)
    expl = items.select(F.col(Col.ITEM_IDX).alias(EXPL_ITEM), F.col(Col.ITEM_ID).alias("explanation_item_id"))
    joined = top.join(items, Col.ITEM_IDX, "left").join(expl, EXPL_ITEM, "left")
    out = joined.withColumn(Col.MODEL_VERSION, F.lit(model_version)).withColumn(
        Col.RUN_DATE, F.lit(run_date).cast("date")
    ).withColumn(EXPL_SIM, F.col(EXPL_SIM).cast("float"))
    return out.select(*[F.col(f.name).cast(f.dataType) for f in RECOMMENDATIONS.fields])
