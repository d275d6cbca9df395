"""Executor side of the default delta-rs write: Spark's own (JVM) Parquet writer, then footers for the log.

Each write goes into a fresh directory ``w-<id>/`` under the table (hive-style ``col=value/``
sub-directories inside it for partition columns). Spark's commit protocol makes that directory hold exactly the
files of the successful tasks; the driver then lists it, reads each file's Parquet footer (not its data) for the
row count and the Delta per-file statistics, and commits all files in one Delta transaction.

Rows never cross from the JVM to Python, which is why this path costs about what a plain
``df.write.parquet`` costs (``benchmarks/bench_delta_write.py``). Row groups are sized in bytes by Spark
(``parquet.block.size`` = ``storage.row_group_bytes``); tables that need an exact row-group layout (the
Petastorm training tables) use :mod:`recsys.lakehouse.file_writer` instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyspark.sql import DataFrame, SparkSession

from recsys.lakehouse.file_stats import stats_json_from_footer
from recsys.lakehouse.file_writer import PartitionOutsideReplaceError, write_dir
from recsys.lakehouse.filesystems import resolve_filesystem
from recsys.lakehouse.partition_paths import HIVE_NULL, hive_unescape
from recsys.spark_session import session_conf

_FOOTER_READERS = 16
_CONCURRENT_PARTITION_WRITERS = 8  # footers are small; on object stores reading them is latency-bound, so in parallel


@dataclass(frozen=True)
class SparkWriteSpec:
    table_uri: str
    partition_columns: tuple[str, ...]
    compression: str
    max_rows_per_file: int
    row_group_bytes: int
    allowed_partitions: Mapping[str, str | None] | None = None  # replace_partitions: the only values allowed
    no_dictionary: tuple[str, ...] = ()  # columns written without dictionary encoding
    zstd_level: int = 1
    # for the Python-side listing of the written files; not in the repr: it may hold credentials
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def write_files(spark: SparkSession, df: DataFrame, spec: SparkWriteSpec) -> list[dict[str, Any]]:
    """Write ``df`` under a new write directory of the table; return one Delta add-action dict per file.

    On failure the write directory is removed (nothing of it was committed). Raises
    :class:`PartitionOutsideReplaceError` when a replace-partitions write holds rows of another partition.
    """
    rel_dir = write_dir(uuid.uuid4().hex[:16])
    out = f"{spec.table_uri.rstrip('/')}/{rel_dir}"
    writer = (
        df.write.mode("error")
        .option("compression", spec.compression)
        .option("parquet.compression.codec.zstd.level", str(spec.zstd_level))
        .option("maxRecordsPerFile", str(spec.max_rows_per_file))
        .option("parquet.block.size", str(spec.row_group_bytes))
        # no _SUCCESS marker: the Delta log is the commit record
        .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    if _is_local(spec.table_uri):
        # no .crc side files next to each data file (vacuum would never remove them)
        writer = (writer.option("fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
                  .option("fs.file.impl.disable.cache", "true"))
    for column in spec.no_dictionary:
        writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    if spec.partition_columns:
        writer = writer.partitionBy(*spec.partition_columns)
    # an absolute local path as it is: made a file:// URI, its spaces or "%" would be parsed as URI syntax
    filesystem, base = resolve_filesystem(spec.table_uri, spec.storage_options)
    try:
        # Delta readers expect int64 microsecond timestamps, not Spark's legacy INT96 default
        settings = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
        if spec.partition_columns:
            # a task keeps up to this many partition files open instead of first sorting its rows by partition
            # (it falls back to sorting the rest beyond that): no sort for callers that already gathered each
            # partition's rows into few tasks (e.g. the ETL's write layout)
            settings["spark.sql.maxConcurrentOutputFileWriters"] = str(_CONCURRENT_PARTITION_WRITERS)
        with session_conf(spark, settings):
            writer.parquet(out)
        files = describe_files(filesystem, base.rstrip("/"), rel_dir, spec.partition_columns)
        if spec.allowed_partitions is not None:
            stray = [f["partition_values"] for f in files
                     if json.loads(f["partition_values"]) != dict(spec.allowed_partitions)]
            if stray:
                raise PartitionOutsideReplaceError(
                    f"rows with partition {json.loads(stray[0])} written by a replace of partition "
                    f"{dict(spec.allowed_partitions)}: every row must belong to the replaced partition"
                )
    except BaseException:
        # nothing was committed yet, so removing the write directory cannot touch a live file
        _remove_dir(filesystem, f"{base.rstrip('/')}/{rel_dir}")
        raise
    return files


def _remove_dir(filesystem: pafs.FileSystem, path: str) -> None:
    if filesystem.get_file_info(path).type == pafs.FileType.Directory:
        filesystem.delete_dir(path)


def remove_write_dir(table_uri: str, rel_dir: str, storage_options: Mapping[str, str] | None = None) -> None:
    """Delete an uncommitted write's directory (``w-<id>/`` under the table), if it was created."""
    filesystem, base = resolve_filesystem(table_uri, storage_options)
    _remove_dir(filesystem, f"{base.rstrip('/')}/{rel_dir}")


def _partition_values(rel_path: str, partition_columns: Sequence[str]) -> dict[str, str | None]:
    """Partition values from Spark's ``col=value`` directories, read back as Spark reads them."""
    found: dict[str, str | None] = {}
    for part in rel_path.split("/")[1:-1]:
        key, sep, value = part.partition("=")
        if sep and key in partition_columns:
            found[key] = None if value == HIVE_NULL else hive_unescape(value)
    missing = [c for c in partition_columns if c not in found]
    if missing:
        raise RuntimeError(f"written file {rel_path} has no directory for partition column(s) {missing}")
    return {c: found[c] for c in partition_columns}


def describe_files(filesystem: pafs.FileSystem, base: str, rel_dir: str,
                   partition_columns: Sequence[str]) -> list[dict[str, Any]]:
    """One add-action dict per non-empty data file under ``base/rel_dir`` (footers read in parallel)."""
    infos = filesystem.get_file_info(pafs.FileSelector(f"{base}/{rel_dir}", recursive=True))
    data = sorted(
        (i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
         and not i.base_name.startswith((".", "_"))),
        key=lambda i: i.path,
    )

    def describe(info: pafs.FileInfo) -> dict[str, Any] | None:
        rel_path = info.path[len(base) + 1:]
        with filesystem.open_input_file(info.path) as handle:
            meta = pq.ParquetFile(handle).metadata
        if meta.num_rows == 0:
            filesystem.delete_file(info.path)  # Spark writes a schema-only file for an empty write
            return None
        return {
            "path": rel_path,
            "size": int(info.size or 0),
            "partition_values": json.dumps(_partition_values(rel_path, partition_columns)),
            "num_records": int(meta.num_rows),
            "stats": stats_json_from_footer(meta, skip=partition_columns),
            "modification_time": int(info.mtime_ns // 1_000_000) if info.mtime_ns else 0,
        }

    with ThreadPoolExecutor(max_workers=min(_FOOTER_READERS, max(1, len(data)))) as pool:
        described = list(pool.map(describe, data))
    return [d for d in described if d is not None]
