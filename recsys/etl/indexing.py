"""Dense, stable integer indexes (DataFrame -> DataFrame, no actions, no single-partition sort).

Ids already in the index table keep their index. New ids get ``max(idx) + 1, ...`` in a deterministic
order: ids are hashed into ``buckets``; within a bucket they are numbered by id, and each bucket starts after
all smaller buckets (offsets from a per-bucket count, a tiny frame). The same new ids therefore always get
the same indexes, and no task ever has to hold all ids.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def extend_index(ids: DataFrame, existing: DataFrame | None, id_col: str, idx_col: str, run_id: str,
                 buckets: int) -> DataFrame:
    """The full index table: ``existing`` (id_col, idx_col, first_run_id) plus rows for new ``ids``.

    Args:
        ids: a frame with column ``id_col`` (duplicates and nulls allowed).
        existing: the current index table, or None.
    """
    distinct = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    if existing is not None:
        new = distinct.join(existing.select(id_col), id_col, "left_anti")
        base = existing.agg((F.coalesce(F.max(idx_col), F.lit(-1)) + 1).alias("_base"))
    else:
        new = distinct
        base = new.sparkSession.range(1).select(F.lit(0).alias("_base"))
    bucketed = new.withColumn("_b", F.pmod(F.xxhash64(id_col), F.lit(buckets)))
    within = bucketed.withColumn("_n", F.row_number().over(Window.partitionBy("_b").orderBy(id_col)))
    sizes = bucketed.groupBy("_b").count()
    offsets = sizes.select(
        "_b", (F.sum("count").over(Window.orderBy("_b")) - F.col("count")).alias("_off"))  # <= buckets rows
    numbered = (within.join(F.broadcast(offsets), "_b").crossJoin(F.broadcast(base))
                .select(id_col, (F.col("_base") + F.col("_off") + F.col("_n") - 1).cast("int").alias(idx_col),
                        F.lit(run_id).alias("first_run_id")))
    if existing is None:
        return numbered
    return existing.select(id_col, idx_col, "first_run_id").unionByName(numbered)
