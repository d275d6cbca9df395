"""Exact-layout delta-rs write: stream one Spark partition's Arrow batches into Parquet files.

Used for tables whose row groups must have a fixed number of rows (the Petastorm training tables: Petastorm
shards by row group). Other writes use Spark's own Parquet writer (:mod:`recsys.lakehouse.spark_writer`),
which avoids moving every row from the JVM to Python.

Runs inside ``DataFrame.mapInArrow``. Rows never travel to the driver: each task writes its own files
into the table directory (hive-style ``col=value/`` sub-directories for partition columns, which are not
stored in the files, as the Delta protocol expects) and yields one small metadata row per file. The driver
then commits all files in one Delta transaction. Memory per task is bounded by one row group plus one batch.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyspark.sql import types as T

from recsys.lakehouse.file_stats import StatsAccumulator
from recsys.lakehouse.filesystems import resolve_filesystem
from recsys.lakehouse.partition_paths import HIVE_NULL, hive_escape

# One row per written file, returned from the executors to the driver.
FILE_METADATA_SCHEMA = T.StructType([
    T.StructField("path", T.StringType(), False),
    T.StructField("size", T.LongType(), False),
    T.StructField("partition_values", T.StringType(), False),  # JSON object {column: value-or-null}
    T.StructField("num_records", T.LongType(), False),
    T.StructField("stats", T.StringType(), False),  # Delta per-file statistics JSON
    T.StructField("modification_time", T.LongType(), False),
])

WRITE_DIR_PREFIX = "w-"
_KEY_SEPARATOR = "\x1f"
_NULL_KEY = "\x00"


class PartitionOutsideReplaceError(ValueError):
    """A row's partition value is outside the partitions the write declared it replaces."""


@dataclass(frozen=True)
class WriteSpec:
    """What every task needs to know to write files (pickled to executors)."""

    table_uri: str
    arrow_schema: pa.Schema  # data columns only, partition columns excluded
    partition_columns: tuple[str, ...]
    row_group_rows: int
    max_rows_per_file: int
    # When replacing partitions: the only allowed partition values, rendered as Delta strings.
    allowed_partitions: Mapping[str, str | None] | None = None
    compression: str = "zstd"
    zstd_level: int = 1
    write_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)  # AWS_*, ...; may hold secrets


def render_partition_value(value: Any) -> str | None:
    """A partition value as the Delta protocol serialises it in ``partitionValues``.

    An empty string is null, as in Spark's writer (which cannot name a directory ``col=``).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def write_dir(write_id: str) -> str:
    """The directory of one write's files, relative to the table root.

    Not hidden (no leading ``_`` or ``.``), so that vacuum removes the files of a write that never committed,
    and not ``key=value`` shaped, so that readers inferring Hive partitions from paths (polars) are not misled.
    """
    return f"{WRITE_DIR_PREFIX}{write_id}"


def partition_dir(values: Mapping[str, str | None]) -> str:
    return "/".join(f"{k}={HIVE_NULL if v is None else hive_escape(v)}" for k, v in values.items())


class _FileRoller:
    """Writes sorted runs of rows into files, one open file at a time, in row groups of a fixed size."""

    def __init__(self, spec: WriteSpec, filesystem: pafs.FileSystem, base_path: str, task_tag: str) -> None:
        self.spec = spec
        self.fs = filesystem
        self.base_path = base_path.rstrip("/")
        self.task_tag = task_tag
        self.key: Mapping[str, str | None] | None = None
        self.writer: pq.ParquetWriter | None = None
        self.rel_path = ""
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.file_rows = 0
        self.file_seq = 0
        self.stats: StatsAccumulator | None = None
        self.finished: list[dict[str, Any]] = []

    def add(self, key: Mapping[str, str | None], table: pa.Table) -> None:
        if self.key is not None and dict(key) != dict(self.key):
            self.close_file()
        self.key = key
        while table.num_rows:
            room = self.spec.max_rows_per_file - self.file_rows - self.buffered
            take = table.slice(0, room) if room < table.num_rows else table
            self.buffer.append(take)
            self.buffered += take.num_rows
            table = table.slice(take.num_rows)
            self._flush(force=False)
            if self.file_rows + self.buffered >= self.spec.max_rows_per_file:
                self.close_file()
                self.key = key

    def _open(self) -> None:
        assert self.key is not None
        self.file_seq += 1
        name = f"part-{self.task_tag}-{self.file_seq:05d}-{self.spec.write_id}.{self.spec.compression}.parquet"
        prefix = "/".join(p for p in (write_dir(self.spec.write_id), partition_dir(self.key)) if p)
        self.rel_path = f"{prefix}/{name}"
        full = f"{self.base_path}/{self.rel_path}"
        self.fs.create_dir(full.rsplit("/", 1)[0], recursive=True)
        self.writer = pq.ParquetWriter(
            full, self.spec.arrow_schema, filesystem=self.fs, compression=self.spec.compression,
            compression_level=self.spec.zstd_level if self.spec.compression == "zstd" else None,
        )
        self.stats = StatsAccumulator(self.spec.arrow_schema)

    def _flush(self, force: bool) -> None:
        rg = self.spec.row_group_rows
        while self.buffered >= rg or (force and self.buffered):
            if self.writer is None:
                self._open()
            assert self.writer is not None and self.stats is not None
            whole = pa.concat_tables(self.buffer)
            group, rest = whole.slice(0, rg), whole.slice(rg)
            self.writer.write_table(group, row_group_size=rg)
            self.stats.add(group)
            self.file_rows += group.num_rows
            self.buffer = [rest] if rest.num_rows else []
            self.buffered = rest.num_rows

    def close_file(self) -> None:
        self._flush(force=True)
        if self.writer is None:
            return
        self.writer.close()
        assert self.stats is not None and self.key is not None
        info = self.fs.get_file_info(f"{self.base_path}/{self.rel_path}")
        self.finished.append({
            "path": self.rel_path,
            "size": int(info.size or 0),
            "partition_values": json.dumps(dict(self.key)),
            "num_records": self.file_rows,
            "stats": self.stats.to_json(),
            "modification_time": int(time.time() * 1000),
        })
        self.writer, self.stats, self.file_rows = None, None, 0


def _run_boundaries(batch: pa.RecordBatch, columns: Sequence[str]) -> list[int]:
    """Start offsets of the runs of equal partition keys in ``batch`` (vectorised), plus its length."""
    if not columns or batch.num_rows == 0:
        return [0, batch.num_rows]
    parts = [pc.fill_null(pc.cast(batch.column(c), pa.string()), _NULL_KEY) for c in columns]
    key = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, _KEY_SEPARATOR)
    changed = pc.not_equal(key.slice(1), key.slice(0, len(key) - 1))
    starts = (pc.indices_nonzero(changed).to_numpy() + 1).tolist()
    return [0, *starts, batch.num_rows]


def make_partition_writer(spec: WriteSpec) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function that writes one Spark partition and yields its file metadata."""
    from pyspark import TaskContext

    partition_columns = list(spec.partition_columns)
    data_columns = spec.arrow_schema.names
    meta_schema = pa.schema([
        ("path", pa.string(), False), ("size", pa.int64(), False), ("partition_values", pa.string(), False),
        ("num_records", pa.int64(), False), ("stats", pa.string(), False),
        ("modification_time", pa.int64(), False),
    ])

    def write(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ctx = TaskContext.get()
        tag = f"{ctx.partitionId():05d}-{ctx.attemptNumber()}" if ctx else uuid.uuid4().hex[:8]
        filesystem, base_path = resolve_filesystem(spec.table_uri, spec.storage_options)
        roller = _FileRoller(spec, filesystem, base_path, tag)
        for batch in batches:
            bounds = _run_boundaries(batch, partition_columns)
            for start, stop in itertools.pairwise(bounds):
                run = batch.slice(start, stop - start)
                key = {c: render_partition_value(run.column(c)[0].as_py()) for c in partition_columns}
                if spec.allowed_partitions is not None and key != dict(spec.allowed_partitions):
                    raise PartitionOutsideReplaceError(
                        f"row with partition {key} written by a replace of partition "
                        f"{dict(spec.allowed_partitions)}: every row must belong to the replaced partition"
                    )
                data = pa.Table.from_batches([run]).select(data_columns).cast(spec.arrow_schema)
                roller.add(key, data)
        roller.close_file()
        if roller.finished:
            yield pa.RecordBatch.from_pylist(roller.finished, schema=meta_schema)

    return write
