"""TableStore: every table read and write of the project goes through here.

Tables are addressed by name under the lakehouse root and are standard Delta Lake tables. Two backends:

* ``delta-spark`` (its JVM classes on the classpath, i.e. clusters): ``format("delta")`` natively.
* ``delta-rs`` (anywhere else): executors write the Parquet files with Spark's own writer into a fresh
  ``w-<id>/`` directory of the table; the driver reads their footers (one small record per file, never the
  data) and commits them all as one Delta transaction with ``deltalake``. Writes that need an exact row-group
  layout (``row_group_rows=``, the Petastorm training tables) write the files from Arrow in ``mapInArrow``
  instead. A failed write commits nothing, so the table stays at its previous version: its partial output is
  removed, and the files of a driver killed before its commit are orphans that vacuum removes.

Reads use a version's live file list from the Delta log, never a directory glob (files replaced by an
overwrite stay on disk until vacuum).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from recsys.config.loader import ConfigError
from recsys.config.sections import StorageConfig
from recsys.lakehouse import delta_log, spark_writer
from recsys.lakehouse.delta_log import Snapshot
from recsys.lakehouse.errors import (
    ConcurrentWriteError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
)
from recsys.lakehouse.file_writer import (
    FILE_METADATA_SCHEMA,
    WRITE_DIR_PREFIX,
    WriteSpec,
    make_partition_writer,
    render_partition_value,
    write_dir,
)
from recsys.lakehouse.filesystems import resolve_filesystem
from recsys.lakehouse.partition_paths import discovered_as_logged, spark_path
from recsys.lakehouse.write_checks import check_replaceable, describe_schema_difference, nullable
from recsys.spark_session import delta_spark_available

log = logging.getLogger(__name__)

ABSENT = -1  # the read version of a table that did not exist when the job looked (see TableStore.write)
WriteMode = Literal["error", "append", "overwrite", "replace_partitions"]
WRITE_MODES: tuple[str, ...] = ("error", "append", "overwrite", "replace_partitions")


MIN_SAFE_RETENTION_HOURS = 1  # vacuum: files younger than this may belong to a write still running

class TableStore:
    """Named Delta tables under one lakehouse root."""

    def __init__(self, spark: SparkSession, storage: StorageConfig) -> None:
        self.spark = spark
        self.storage = storage
        root = storage.lakehouse
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)
        if "://" not in root and "%" in self.root:
            raise ConfigError(f"storage.lakehouse {self.root!r} contains '%', which delta-rs reads as a URI escape "
                             "(it would look for the tables elsewhere): choose a path without '%'")
        if storage.backend == "auto":
            self.backend = "delta-spark" if delta_spark_available(spark) else "delta-rs"
        elif storage.backend in ("delta-spark", "delta-rs"):
            self.backend = storage.backend
        else:
            raise ValueError(f"storage.backend must be auto, delta-spark or delta-rs, not {storage.backend!r}")

    # ------------------------------------------------------------------ addressing
    def uri(self, name: str) -> str:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid table name {name!r}")
        return f"{self.root}/{name}"

    def exists(self, name: str) -> bool:
        return delta_log.is_table(self.uri(name), self.storage.storage_options)

    def list_tables(self) -> list[str]:
        from pyarrow import fs as pafs

        if "://" not in self.root and not os.path.isdir(self.root):
            return []
        filesystem, base = resolve_filesystem(self.root, self.storage.storage_options)
        infos = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
        return [n for n in names if self.exists(n)]

    # ------------------------------------------------------------------ reads
    def snapshot(self, name: str, version: int | None = None) -> Snapshot:
        """The pinned version's schema and live file list (for Petastorm and other non-Spark readers)."""
        return delta_log.snapshot(name, self.uri(name), version, self.storage.storage_options)

    def version(self, name: str) -> int:
        return delta_log.open_table(self.uri(name), storage_options=self.storage.storage_options).version()

    def current_version(self, name: str) -> int:
        """The table's latest version, :data:`ABSENT` if there is no table: what a job pins before it reads
        tables it later rewrites (``write(read_version=...)``)."""
        return self.version(name) if self.exists(name) else ABSENT

    def schema(self, name: str) -> T.StructType:
        return delta_log.spark_schema(delta_log.open_table(self.uri(name),
                                                           storage_options=self.storage.storage_options))

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table (latest or pinned ``version``) as a DataFrame with the table's schema."""
        if self.backend == "delta-spark":
            reader = self.spark.read.format("delta")
            if version is not None:
                reader = reader.option("versionAsOf", version)
            return reader.load(self.uri(name))
        return self.read_snapshot(self.snapshot(name, version))

    def read_snapshot(self, snap: Snapshot) -> DataFrame:
        """Read exactly the snapshot's live files (partition columns included, with partition pruning).

        Spark infers partition values from the ``col=value`` directories below a base path, and needs every
        file at the same depth below it. This layer's files sit in one ``w-<id>/`` directory per write, other
        writers' (``optimize``, delta-spark) directly under the table: each such root is read as one scan
        (with Spark's partition discovery and pruning) and the scans are unioned. A table that was overwritten
        has one; appends and partition replaces add one each until ``recsys table optimize`` compacts them.

        The values are the log's (``partitionValues``), not the directory names: where Spark would read a
        directory name differently (a writer that escapes other characters than Spark does, an empty string),
        the files are read per partition value instead, with the log's values as columns.
        """
        snap.require_files()
        if not snap.files:
            return self.spark.createDataFrame([], snap.schema)
        columns = [f.name for f in snap.schema.fields]
        paths = [spark_path(uri) for uri in snap.files]  # the log's paths are URI-encoded; Spark's are not
        if not snap.partition_columns:
            return self.spark.read.schema(snap.schema).parquet(*paths).select(*columns)
        types = {f.name: f.dataType for f in snap.schema.fields}
        if not all(discovered_as_logged(path, values, types)
                   for path, values in zip(paths, snap.partition_values, strict=True)):
            return self._read_by_partition_value(snap, paths)
        base = spark_path(snap.uri).rstrip("/")
        roots: dict[str, list[str]] = {}
        for path in paths:
            top = path[len(base) + 1:].split("/", 1)[0] if path.startswith(base + "/") else ""
            root = f"{base}/{top}" if top.startswith(WRITE_DIR_PREFIX) and "=" not in top else base
            roots.setdefault(root, []).append(path)
        frames = [
            self.spark.read.schema(snap.schema).option("basePath", root).parquet(*files).select(*columns)
            for root, files in sorted(roots.items())
        ]
        return functools.reduce(DataFrame.union, frames)

    def _read_by_partition_value(self, snap: Snapshot, paths: Sequence[str]) -> DataFrame:
        """One scan per distinct partition value, its values added as typed literals (no path inference)."""
        data_schema = T.StructType([f for f in snap.schema.fields if f.name not in snap.partition_columns])
        groups: dict[tuple[str | None, ...], list[str]] = {}
        for path, values in zip(paths, snap.partition_values, strict=True):
            key = tuple(values.get(c) or None for c in snap.partition_columns)  # "" is null, as Spark writes it
            groups.setdefault(key, []).append(path)
        log.info("table %s: partition directories Spark would misread; reading %d partition values one by one",
                 snap.name, len(groups))
        types = {f.name: f.dataType for f in snap.schema.fields}
        frames = []
        for key, files in sorted(groups.items(), key=lambda kv: [(v is None, v or "") for v in kv[0]]):
            frame = self.spark.read.schema(data_schema).parquet(*files)
            literals = {c: F.lit(v).cast(types[c]) for c, v in zip(snap.partition_columns, key, strict=True)}
            frames.append(frame.select(*[literals.get(c, F.col(c)).alias(c) for c in
                                         [f.name for f in snap.schema.fields]]))
        return functools.reduce(DataFrame.union, frames)

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        table = delta_log.open_table(self.uri(name), storage_options=self.storage.storage_options)
        return table.history(limit)

    # ------------------------------------------------------------------ writes
    def write(
        self,
        df: DataFrame,
        name: str,
        mode: WriteMode = "error",
        partition_by: Sequence[str] = (),
        replace_partitions: Mapping[str, Any] | None = None,
        row_group_rows: int | None = None,
        no_dictionary: Sequence[str] = (),
        read_version: int | None = None,
    ) -> int:
        """Write ``df`` as table ``name`` and return the committed version.

        Args:
            mode: ``error`` (default) refuses an existing table; ``append``; ``overwrite`` replaces all
                rows; ``replace_partitions`` atomically replaces the partition named by
                ``replace_partitions`` (e.g. ``{"run_date": date(2024, 1, 1)}``), which makes re-running a job
                for the same partition idempotent. Every row written must belong to that partition.
            partition_by: partition columns; must match the existing table's.
            row_group_rows: exact Parquet row-group size in rows, for tables fed to Petastorm (which shards by row
                group). Without it, Spark's Parquet writer sizes row groups in bytes
                (``storage.row_group_bytes``), which is the fast path: rows never leave the JVM.
            no_dictionary: columns written without Parquet dictionary encoding (about one value per row:
                the attempt only costs time). Applied by Spark's writer (the default path); the other writers
                keep their defaults.
            read_version: the version of this table that ``df`` was derived from (:data:`ABSENT`: the job found
                no table), for read-modify-write jobs. If another writer committed since, the write is refused
                before any file is written; with the delta-rs backend the commit also fails if one commits
                during the write (an append then is not retried on top of it).

        Raises:
            TableExistsError, SchemaMismatchError, ConcurrentWriteError.
        """
        if mode not in WRITE_MODES:
            raise ValueError(f"write mode must be one of {WRITE_MODES}, not {mode!r}")
        if (mode == "replace_partitions") != (replace_partitions is not None):
            raise ValueError("replace_partitions={column: value} goes with mode='replace_partitions' only")
        uri = self.uri(name)
        partition_by = tuple(partition_by)
        if replace_partitions is not None and sorted(replace_partitions) != sorted(partition_by):
            raise ValueError(f"replace_partitions must give a value for each of {partition_by}")
        read_table = None
        exists = delta_log.is_table(uri, self.storage.storage_options)
        if read_version is not None and (now := self.version(name) if exists else ABSENT) != read_version:
            raise ConcurrentWriteError(
                f"table {name!r} is at version {now}, but this job read version {read_version} "
                f"({ABSENT} = no table): another job committed to it meanwhile. Nothing was written; re-run "
                "this job (jobs that write the same tables must not overlap)")
        if exists:
            if mode == "error":
                raise TableExistsError(
                    f"table {name!r} already exists at {uri}; pass mode='overwrite', 'append' or "
                    "'replace_partitions' to change it"
                )
            pinned = read_version if read_version not in (None, ABSENT) else None
            read_table = delta_log.open_table(uri, pinned, storage_options=self.storage.storage_options)
            df = self._conform(df, name, read_table, partition_by)
        schema = nullable(df.schema)
        if replace_partitions is not None:
            check_replaceable(replace_partitions, schema)
        if self.backend == "delta-spark":
            return self._write_native(df, uri, mode, partition_by, replace_partitions)
        return self._write_delta_rs(df, name, uri, schema, read_table, mode, partition_by, replace_partitions,
                                    row_group_rows, tuple(no_dictionary), read_version is None)

    def _conform(self, df: DataFrame, name: str, table: Any, partition_by: tuple[str, ...]) -> DataFrame:
        """Check ``df`` against the existing table (names, types, partitioning); order its columns."""
        expected = delta_log.spark_schema(table)
        existing_parts = tuple(table.metadata().partition_columns)
        if existing_parts != partition_by:
            raise SchemaMismatchError(
                f"table {name!r} is partitioned by {list(existing_parts)}, this write by {list(partition_by)}"
            )
        actual = nullable(df.schema)
        by_name = {f.name: f for f in actual.fields}
        if set(by_name) != {f.name for f in expected.fields} or any(
            by_name[f.name].dataType != f.dataType for f in expected.fields
        ):
            raise SchemaMismatchError(
                f"schema of the write does not match table {name!r}: "
                f"{describe_schema_difference(expected, actual)}. Nothing was written."
            )
        return df.select(*[f.name for f in expected.fields])

    def _write_delta_rs(
        self, df: DataFrame, name: str, uri: str, schema: T.StructType, read_table: Any, mode: str,
        partition_by: tuple[str, ...], replace_partitions: Mapping[str, Any] | None, row_group_rows: int | None,
        no_dictionary: tuple[str, ...] = (), blind: bool = True,
    ) -> int:
        if read_table is not None and (unreadable := delta_log.unreadable_features(read_table)):
            raise UnsupportedTableError(
                f"table {name!r} at {uri} cannot be written by the delta-rs backend: {unreadable}. Write it with "
                "delta-spark (storage.backend: delta-spark, its jars on the classpath). Nothing was written.")
        allowed = None
        filters = None
        if replace_partitions is not None:
            allowed = {c: render_partition_value(replace_partitions[c]) for c in partition_by}
            filters = [(c, "=", v) for c, v in allowed.items()]
        if row_group_rows is None:
            files = spark_writer.write_files(self.spark, df, spark_writer.SparkWriteSpec(
                table_uri=uri, partition_columns=partition_by, compression=self.storage.compression,
                max_rows_per_file=self.storage.max_rows_per_file, row_group_bytes=self.storage.row_group_bytes,
                allowed_partitions=allowed, no_dictionary=no_dictionary, zstd_level=self.storage.zstd_level,
                storage_options=dict(self.storage.storage_options),
            ))
        else:
            files = self._write_exact_row_groups(df, uri, schema, partition_by, allowed, row_group_rows)
        version = delta_log.commit(
            uri, read_table, schema, partition_by, files, mode, filters,
            operation_note=f"recsys {mode} {name}", storage_options=self.storage.storage_options,
            retry_append=blind,
        )
        log.info("committed %s v%d: %d files, %d rows (%s)", name, version, len(files),
                 sum(int(f["num_records"]) for f in files), mode)
        return version

    def _write_exact_row_groups(
        self, df: DataFrame, uri: str, schema: T.StructType, partition_by: tuple[str, ...],
        allowed: Mapping[str, str | None] | None, row_group_rows: int,
    ) -> list[dict[str, Any]]:
        data_schema = T.StructType([f for f in schema.fields if f.name not in partition_by])
        spec = WriteSpec(
            table_uri=uri,
            arrow_schema=to_arrow_schema(data_schema),
            partition_columns=partition_by,
            row_group_rows=row_group_rows,
            max_rows_per_file=self.storage.max_rows_per_file,
            allowed_partitions=allowed,
            compression=self.storage.compression,
            zstd_level=self.storage.zstd_level,
            storage_options=dict(self.storage.storage_options),
        )
        frame = df.sortWithinPartitions(*partition_by) if partition_by else df
        metadata = frame.mapInArrow(make_partition_writer(spec), FILE_METADATA_SCHEMA)
        # Bigger Arrow batches into the writer tasks: fewer JVM->Python round trips (~15% faster writes).
        # A writer task holds one batch plus one row group, so memory stays bounded by the row group size.
        conf_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        previous = self.spark.conf.get(conf_key, None)
        self.spark.conf.set(conf_key, str(max(row_group_rows, 10_000)))
        try:
            return [row.asDict() for row in metadata.collect()]  # one small row per file, not the data
        except BaseException:
            # nothing of it was committed
            spark_writer.remove_write_dir(uri, write_dir(spec.write_id), self.storage.storage_options)
            raise
        finally:
            if previous is None:
                self.spark.conf.unset(conf_key)
            else:
                self.spark.conf.set(conf_key, previous)

    def _write_native(
        self, df: DataFrame, uri: str, mode: str, partition_by: tuple[str, ...],
        replace_partitions: Mapping[str, Any] | None,
    ) -> int:
        writer = df.write.format("delta")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_partitions is not None:
            predicate = " AND ".join(
                f"`{c}` = '{render_partition_value(v)}'" for c, v in replace_partitions.items()
            )
            writer = writer.mode("overwrite").option("replaceWhere", predicate)
        else:
            writer = writer.mode("errorifexists" if mode == "error" else mode)
        writer.save(uri)
        return int(self.spark.sql(f"DESCRIBE HISTORY delta.`{uri}` LIMIT 1").first()["version"])  # type: ignore[index]

    # ------------------------------------------------------------------ maintenance
    def optimize(self, name: str) -> dict[str, Any]:
        """Compact small files (bin-packing); readers of older versions are unaffected."""
        uri = self.uri(name)
        if self.backend == "delta-spark":
            row = self.spark.sql(f"OPTIMIZE delta.`{uri}`").first()
            return {"metrics": str(row["metrics"]) if row else ""}
        table = delta_log.open_table(uri, storage_options=self.storage.storage_options)
        if unreadable := delta_log.unreadable_features(table):  # compaction rewrites the live files as they are
            raise delta_log.unreadable_table_error(name, table.table_uri, table.version(), unreadable)
        return dict(table.optimize.compact())

    def vacuum(self, name: str, retention_hours: int | None = None, dry_run: bool = False,
               allow_short_retention: bool = False) -> list[str]:
        """Delete files no version younger than the retention references (orphans of failed writes too).

        Files of a write still running are in no version yet: a retention shorter than
        :data:`MIN_SAFE_RETENTION_HOURS` would delete them (and the write would commit missing files), so it is
        refused unless ``allow_short_retention`` (no job writes the table meanwhile) or ``dry_run``.
        """
        hours = self.storage.vacuum_retention_hours if retention_hours is None else retention_hours
        if hours < MIN_SAFE_RETENTION_HOURS and not (allow_short_retention or dry_run):
            raise ValueError(
                f"vacuum retention of {hours} h is below {MIN_SAFE_RETENTION_HOURS} h: files of a write still "
                f"running on table {name!r} are not in its log yet and would be deleted. Pass "
                "--allow-short-retention (allow_short_retention=True) only when no job writes the table.")
        table = delta_log.open_table(self.uri(name), storage_options=self.storage.storage_options)
        return list(table.vacuum(retention_hours=hours, dry_run=dry_run, enforce_retention_duration=False,
                                 full=True))

    def require(self, name: str) -> None:
        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name!r} not found under {self.root}: run the job that produces it first "
                "(see `recsys --help`)"
            )
