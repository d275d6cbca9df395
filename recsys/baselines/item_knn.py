"""Item-kNN baseline: cosine similarity of items' user vectors (binary user-item matrix), Spark sparse ops.

* Each user contributes at most ``max_user_items`` (most recent) items, which bounds the co-occurrence
  pairs per user; cosine(i, j) = co-occurrences / sqrt(users(i) * users(j)) on that matrix.
* Each item keeps its ``neighbours`` most similar items (ties: smaller item_idx).
* A user's score for item j is the sum of sim(h, j) over the user's profile items h; seen items are excluded;
  users with fewer than K candidates are filled with the most-popular list (ranked after every kNN item).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys.schemas import Col

NEIGHBOUR = "neighbour_idx"
SIM = "similarity"
PROFILE = "profile"
# Similarities are in [0, 1] and a score sums at most max_user_items of them: 2**40 per unit keeps ~1e-12
# resolution and room for 2**23 terms in a long.
_FIXED_POINT = float(2**40)


def user_profiles(fit: DataFrame, max_user_items: int) -> DataFrame:
    """``user_idx, profile``: each user's distinct items in ``fit``, at most the ``max_user_items`` latest."""
    latest = fit.groupBy(Col.USER_IDX, Col.ITEM_IDX).agg(F.max(Col.TS).alias(Col.TS))
    order = Window.partitionBy(Col.USER_IDX).orderBy(F.col(Col.TS).desc(), F.col(Col.ITEM_IDX).desc())
    capped = latest.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= max_user_items)
    return capped.groupBy(Col.USER_IDX).agg(F.array_sort(F.collect_list(Col.ITEM_IDX)).alias(PROFILE))


def item_neighbours(profiles: DataFrame, neighbours: int) -> DataFrame:
    """``item_idx, neighbour_idx, similarity``: each item's top cosine neighbours."""
    pairs = profiles.select(Col.USER_IDX, F.explode(PROFILE).alias("a"), PROFILE).select(
        "a", F.explode(PROFILE).alias("b")
    ).where(F.col("a") < F.col("b"))
    co = pairs.groupBy("a", "b").agg(F.count(F.lit(1)).alias("c"))
    counts = profiles.select(F.explode(PROFILE).alias("i")).groupBy("i").agg(F.count(F.lit(1)).alias("n"))
    na = counts.select(F.col("i").alias("a"), F.col("n").alias("na"))
    nb = counts.select(F.col("i").alias("b"), F.col("n").alias("nb"))
    sims = co.join(na, "a").join(nb, "b").select(
        "a", "b", (F.col("c") / F.sqrt(F.col("na") * F.col("nb"))).cast("double").alias(SIM)
    )
    both = sims.unionByName(sims.select(F.col("b").alias("a"), F.col("a").alias("b"), SIM))
    order = Window.partitionBy("a").orderBy(F.col(SIM).desc(), F.col("b").asc())
    top = both.withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= neighbours)
    return top.select(F.col("a").alias(Col.ITEM_IDX), F.col("b").alias(NEIGHBOUR), SIM)


def knn_recommend(neighbours: DataFrame, profiles: DataFrame, users: DataFrame, k: int,
                  fallback: DataFrame) -> DataFrame:
    """``user_idx, item_idx, score, rank`` for ``users`` (``user_idx, seen_items``).

    Args:
        fallback: ``user_idx, item_idx, rank`` (e.g. most-popular) used to fill lists shorter than ``k``.
    """
    profile = profiles.join(users.select(Col.USER_IDX), Col.USER_IDX, "left_semi").select(
        Col.USER_IDX, F.explode(PROFILE).alias(Col.ITEM_IDX)
    )
    # Summed in fixed point: integer addition does not depend on the order the shuffle delivers the terms in,
    # so equal scores (and their tie order) are the same on every run; a double sum's last bits are not.
    fixed = (F.col(SIM) * F.lit(_FIXED_POINT)).cast("long")
    scored = profile.join(neighbours, Col.ITEM_IDX).groupBy(Col.USER_IDX, NEIGHBOUR).agg(
        (F.sum(fixed) / F.lit(_FIXED_POINT)).alias(Col.SCORE)
    ).select(Col.USER_IDX, F.col(NEIGHBOUR).alias(Col.ITEM_IDX), Col.SCORE)
    seen = users.select(Col.USER_IDX, F.explode("seen_items").alias(Col.ITEM_IDX))
    candidates = scored.select(
        Col.USER_IDX, Col.ITEM_IDX, F.lit(0).alias("_tier"), F.col(Col.SCORE).cast("double").alias(Col.SCORE),
        F.lit(0).alias("_fb"),
    )
    filler = fallback.join(users.select(Col.USER_IDX), Col.USER_IDX, "left_semi").select(
        Col.USER_IDX, Col.ITEM_IDX, F.lit(1).alias("_tier"), F.lit(0.0).cast("double").alias(Col.SCORE),
        F.col(Col.RANK).alias("_fb"),
    )
    union = candidates.unionByName(filler).join(seen, [Col.USER_IDX, Col.ITEM_IDX], "left_anti")
    best = Window.partitionBy(Col.USER_IDX, Col.ITEM_IDX).orderBy(F.col("_tier"))
    dedup = union.withColumn("_d", F.row_number().over(best)).where(F.col("_d") == 1)
    order = Window.partitionBy(Col.USER_IDX).orderBy(
        F.col("_tier"), F.col(Col.SCORE).desc(), F.col("_fb"), F.col(Col.ITEM_IDX)
    )
    ranked = dedup.withColumn(Col.RANK, F.row_number().over(order)).where(F.col(Col.RANK) <= k)
    return ranked.select(Col.USER_IDX, Col.ITEM_IDX, F.col(Col.SCORE).cast("float").alias(Col.SCORE),
                         F.col(Col.RANK).cast("int").alias(Col.RANK))
