"""File and row-group layout of the training tables, and their deterministic shuffle.

Petastorm hands whole row groups to training workers, and training reads row groups sequentially: a table
needs at least as many row groups as there are workers, and each row group should mix many users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

_SHUFFLE_KEY = "_shuffle_key"


@dataclass(frozen=True)
class Layout:
    """How to write a table of ``rows`` rows."""

    rows: int
    partitions: int       # Spark partitions (= writer tasks, each writing >= 1 file when non-empty)
    row_group_rows: int   # Parquet rows per row group

    @property
    def min_row_groups(self) -> int:
        """Row groups the table is guaranteed to have (fewer only when it has fewer rows)."""
        return math.ceil(self.rows / self.row_group_rows) if self.rows else 0


def plan_layout(rows: int, min_row_groups: int, max_row_group_rows: int, max_rows_per_file: int) -> Layout:
    """Row groups of ``floor(rows / min_row_groups)`` rows (at least 1, at most ``max_row_group_rows``).

    Rounding down guarantees ``ceil(rows / row_group_rows) >= min_row_groups`` whenever
    ``rows >= min_row_groups``, however the rows are spread over files. ``partitions`` is at least
    ``min_row_groups`` (and enough to respect ``max_rows_per_file``), so that files, too, are several.
    """
    if min_row_groups < 1 or max_row_group_rows < 1 or max_rows_per_file < 1:
        raise ValueError("min_row_groups, max_row_group_rows and max_rows_per_file must be >= 1")
    per_group = max(1, min(max_row_group_rows, rows // min_row_groups))
    partitions = max(min_row_groups, math.ceil(rows / max_rows_per_file), 1)
    return Layout(rows=rows, partitions=partitions, row_group_rows=per_group)


def shuffle(df: DataFrame, seed: int, partitions: int, key_columns: Sequence[str]) -> DataFrame:
    """Deterministically shuffle ``df`` into ``partitions`` partitions.

    Rows are hash-partitioned and then sorted within each partition by ``xxhash64(seed, *key_columns)``, so
    that consecutive rows (and so each row group) come from many users, and a re-run on the same input writes
    the same files. ``key_columns`` must identify a row (up to identical rows).
    """
    key = F.xxhash64(F.lit(seed), *[F.col(c) for c in key_columns])
    return (
        df.withColumn(_SHUFFLE_KEY, key)
        .repartition(partitions, F.col(_SHUFFLE_KEY))
        .sortWithinPartitions(_SHUFFLE_KEY, *key_columns)
        .drop(_SHUFFLE_KEY)
    )
