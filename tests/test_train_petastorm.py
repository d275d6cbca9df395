"""The Petastorm feeding module: shards are disjoint, cover the snapshot, and fail clearly when too few."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest
from pyspark.sql import SparkSession

from recsys.lakehouse import TableStore
from recsys.schemas import PAD_ITEM, TRAIN_EXAMPLES, Tables
from recsys.training.petastorm_data import (
    ShardBatches,
    ShardingError,
    check_shardable,
    read_shard,
    row_group_sizes,
    steps_per_epoch,
)

ROWS = 530


def write_examples(spark: SparkSession, store: TableStore, rows: int = ROWS,
                   row_group_rows: int = 50) -> list[str]:
    data = []
    for i in range(rows):
        length = 1 + i % 5
        history = [PAD_ITEM] * (6 - length) + [(i + k) % 97 for k in range(length)]
        data.append((i, history, length, i % 97, datetime(2024, 1, 1), 1.0))
    frame = spark.createDataFrame(data, TRAIN_EXAMPLES).repartition(3)
    store.write(frame, Tables.TRAIN_EXAMPLES, mode="overwrite", row_group_rows=row_group_rows)
    # a second version replaces the first: readers must use the snapshot's live files, not the directory
    store.write(frame, Tables.TRAIN_EXAMPLES, mode="overwrite", row_group_rows=row_group_rows)
    return list(store.snapshot(Tables.TRAIN_EXAMPLES).files)


def test_shards_are_disjoint_and_cover_the_snapshot(spark: SparkSession, store: TableStore) -> None:
    files = write_examples(spark, store)
    assert sum(row_group_sizes(files)) == ROWS
    seen: list[np.ndarray] = []
    for rank in range(3):
        shard = read_shard(files, rank, 3, columns=("user_idx", "history", "target_item_idx"))
        assert len(shard["user_idx"]) > 0
        assert shard["history"].shape[1] == 6
        assert (shard["history"][:, -1] >= 0).all()  # most recent item last, padding on the left
        seen.append(shard["user_idx"])
    together = np.concatenate(seen)
    assert len(together) == ROWS
    assert sorted(together.tolist()) == list(range(ROWS))


def test_too_few_row_groups_is_a_clear_error(spark: SparkSession, store: TableStore) -> None:
    files = write_examples(spark, store, rows=40, row_group_rows=1000)
    groups = len(row_group_sizes(files))
    with pytest.raises(ShardingError, match="row group"):
        check_shardable(files, groups + 1)
    assert check_shardable(files, groups)


def test_shard_batches_have_fixed_size_and_cycle(spark: SparkSession, store: TableStore) -> None:
    files = write_examples(spark, store)
    own = set(read_shard(files, 1, 2, columns=("target_item_idx",))["target_item_idx"].tolist())
    steps = steps_per_epoch(ROWS, 2, 32)
    assert steps == ROWS // 64
    with ShardBatches(files, rank=1, world_size=2, batch_size=32, seed=3, shuffle_buffer_rows=64) as data:
        batches = [data.next_batch() for _ in range(3 * steps)]  # more than one pass over the shard
    for batch in batches:
        assert batch.history.shape == (32, 6) and batch.target.shape == (32,)
        assert set(batch.target.tolist()) <= own
    assert data.wait_seconds > 0


def test_shard_batches_repeat_exactly_across_passes(spark: SparkSession, store: TableStore) -> None:
    """Same seed, same batches, whatever the consumer's pace (Petastorm's own cycling reshuffles by timing)."""
    files = write_examples(spark, store)

    def batches(pause_s: float, seed: int = 3) -> list[bytes]:
        out = []
        with ShardBatches(files, rank=0, world_size=2, batch_size=32, seed=seed, shuffle_buffer_rows=64) as data:
            for _ in range(4 * steps_per_epoch(ROWS, 2, 32)):  # four passes over the shard
                batch = data.next_batch()
                out.append(batch.history.tobytes() + batch.target.tobytes())
                time.sleep(pause_s)  # a slow consumer: the reader waits on a full queue at each pass's start
        return out

    fast = batches(0.0)
    assert batches(0.02) == fast
    assert batches(0.0, seed=4) != fast
