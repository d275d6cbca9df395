"""Reading and committing the Delta log with delta-rs (``deltalake``), independent of Spark.

Used by both backends for snapshots (the live file list of a version, for Petastorm and other non-Spark
readers), history and vacuum; used by the delta-rs backend for commits.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, create_table_with_add_actions
from pyspark.sql import types as T

from recsys.lakehouse.errors import (
    ConcurrentWriteError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
)
from recsys.lakehouse.filesystems import resolve_paths

log = logging.getLogger(__name__)
_WRITE_ID = "recsys.write_id"  # commitInfo key naming the transaction, to find its version afterwards


@dataclass(frozen=True)
class Snapshot:
    """One pinned version of a table: what a reader needs without Spark."""

    name: str
    uri: str
    version: int
    schema: T.StructType
    partition_columns: tuple[str, ...]
    files: tuple[str, ...]  # absolute URIs of the live data files of this version
    partition_values: tuple[Mapping[str, str | None], ...]  # per file, same order
    num_records: int | None  # total from the log statistics, when every file has them (and count live rows)
    unreadable: str = ""  # why the live files do not give the table's rows as they are ("" = they do)
    # object-store settings to read the files (not in the repr: they may hold credentials)
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)

    def require_files(self) -> None:
        """Raise :class:`UnsupportedTableError` unless reading :attr:`files` directly gives the table's rows."""
        if self.unreadable:
            raise unreadable_table_error(self.name, self.uri, self.version, self.unreadable)


def unreadable_table_error(name: str, uri: str, version: int, unreadable: str) -> UnsupportedTableError:
    """The error for a table version whose live files are not its rows as they are (see :func:`unreadable_features`)."""
    return UnsupportedTableError(
        f"table {name} at {uri} (version {version}) cannot be read from its file list: {unreadable}. Read it "
        "with delta-spark (storage.backend: delta-spark, its jars on the classpath), or rewrite it without the "
        "feature (delta-spark: REORG TABLE ... APPLY (PURGE), then ALTER TABLE ... DROP FEATURE).")


def unreadable_features(table: DeltaTable) -> str:
    """Why reading the table's live Parquet files directly would not give its rows ("" = it would): deletion
    vectors (rows deleted since live on in the files) or column mapping (files name columns physically)."""
    reasons = []
    if "deletionVectors" in (table.protocol().reader_features or []):
        reasons.append("it has the deletionVectors feature (its files may still hold deleted rows)")
    mapping = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mapping != "none":
        reasons.append(f"it uses column mapping (mode {mapping}: its files name columns by physical names)")
    return "; ".join(reasons)


def open_table(uri: str, version: int | None = None,
               storage_options: Mapping[str, str] | None = None) -> DeltaTable:
    try:
        table = DeltaTable(uri, storage_options=dict(storage_options or {}) or None)
        if version is not None:
            table.load_as_version(version)
        return table
    except DeltaTableNotFound as exc:
        raise TableNotFoundError(f"no Delta table at {uri}") from exc
    except DeltaError as exc:
        if version is not None and "version" in str(exc).lower():
            raise TableNotFoundError(f"table {uri} has no version {version}: {exc}") from exc
        raise


def is_table(uri: str, storage_options: Mapping[str, str] | None = None) -> bool:
    return DeltaTable.is_deltatable(uri, storage_options=dict(storage_options or {}) or None)


def spark_schema(table: DeltaTable) -> T.StructType:
    """The table schema as Spark sees it (Delta's schema JSON is Spark's StructType JSON)."""
    return T.StructType.fromJson(json.loads(table.schema().to_json()))


def snapshot(name: str, uri: str, version: int | None = None,
             storage_options: Mapping[str, str] | None = None) -> Snapshot:
    table = open_table(uri, version, storage_options)
    actions = pa.table(table.get_add_actions(flatten=True)) if _has_files(table) else None
    partition_columns = tuple(table.metadata().partition_columns)
    files: list[str] = []
    values: list[dict[str, str | None]] = []
    total: int | None = 0
    if actions is not None and actions.num_rows:
        base = table.table_uri.rstrip("/")
        paths = actions.column("path").to_pylist()
        files = [p if "://" in p else f"{base}/{p}" for p in paths]
        for col in partition_columns:
            column = actions.column(f"partition.{col}")
            rendered = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
            for i, value in enumerate(rendered.to_pylist()):
                if len(values) <= i:
                    values.append({})
                values[i][col] = value
        if not partition_columns:
            values = [{} for _ in files]
        counts = actions.column("num_records")
        total = None if counts.null_count else int(pa.compute.sum(counts).as_py() or 0)
    unreadable = unreadable_features(table)
    return Snapshot(name, table.table_uri, table.version(), spark_schema(table), partition_columns,
                    tuple(files), tuple(values), None if unreadable else total, unreadable,
                    dict(storage_options or {}))


def _has_files(table: DeltaTable) -> bool:
    return bool(table.file_uris())


def read_arrow(snap: Snapshot, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a snapshot into one Arrow table (small tables and tests; Spark reads big ones)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    snap.require_files()
    schema = to_arrow_schema(snap.schema)
    wanted = list(columns) if columns else schema.names
    pieces = []
    filesystem, paths = resolve_paths(snap.files, snap.storage_options) if snap.files else (None, [])
    for path, values in zip(paths, snap.partition_values, strict=True):
        data_cols = [c for c in wanted if c not in snap.partition_columns]
        piece = pq.read_table(path, filesystem=filesystem, columns=data_cols)
        for col in snap.partition_columns:
            if col in wanted:
                arr = pa.array([values.get(col)] * piece.num_rows, pa.string())
                piece = piece.append_column(col, arr.cast(schema.field(col).type))
        pieces.append(piece.select(wanted).cast(pa.schema([schema.field(c) for c in wanted])))
    if not pieces:
        return pa.schema([schema.field(c) for c in wanted]).empty_table()
    return pa.concat_tables(pieces)


def commit(
    uri: str,
    read_table: DeltaTable | None,
    schema: T.StructType,
    partition_by: Sequence[str],
    files: Sequence[Mapping[str, Any]],
    mode: str,
    partition_filters: Sequence[tuple[str, str, Any]] | None,
    operation_note: str,
    storage_options: Mapping[str, str] | None = None,
    retry_append: bool = True,
) -> int:
    """Commit ``files`` (written by executors) as one transaction; return the new version.

    ``read_table`` is the table as loaded when the write began (``None`` if it did not exist): a commit that
    conflicts with what others committed since then fails with :class:`ConcurrentWriteError`. An append
    (blind: it read nothing of the table) is retried on top of others' commits unless ``retry_append`` is
    False (the rows were derived from ``read_table``'s version).
    """
    delta_schema = DeltaSchema.from_json(schema.json())
    adds = [
        AddAction(
            path=f["path"], size=int(f["size"]), partition_values=json.loads(f["partition_values"]),
            modification_time=int(f["modification_time"]), data_change=True, stats=f["stats"],
        )
        for f in files
    ]
    # A blind append may be retried on top of whatever others committed meanwhile (write-serializable);
    # an overwrite or partition replace decided what to remove from the version it read, so it must not.
    retries = None if mode == "append" and retry_append else 0
    write_id = uuid.uuid4().hex
    props = CommitProperties(custom_metadata={"recsys.operation": operation_note, _WRITE_ID: write_id},
                             max_commit_retries=retries)
    try:
        if read_table is None:
            create_table_with_add_actions(
                uri, delta_schema, adds, mode="error", partition_by=list(partition_by) or None,
                storage_options=dict(storage_options or {}) or None, commit_properties=props,
            )
            return 0
        read_version = read_table.version()  # the commit below may move the object on to the new version
        actions: list[AddAction | RemoveAction] = list(adds)
        read_table.create_write_transaction(
            actions, mode="overwrite" if mode in ("overwrite", "replace_partitions") else "append",
            schema=delta_schema, partition_by=list(partition_by) or None,
            partition_filters=list(partition_filters) if partition_filters else None,
            commit_properties=props,
        )
    except CommitFailedError as exc:
        raise ConcurrentWriteError(
            f"commit to {uri} lost a race with a concurrent writer ({exc}); this write was not applied and "
            "the table is unchanged by it. Re-run the job; its files are orphans that vacuum removes."
        ) from exc
    except DeltaError as exc:
        if read_table is None and "exist" in str(exc).lower():
            raise TableExistsError(f"table at {uri} was created concurrently by another writer: {exc}") from exc
        if read_table is not None and ("conflict" in str(exc).lower() or "concurrent" in str(exc).lower()):
            raise ConcurrentWriteError(f"commit to {uri} conflicts with a concurrent write: {exc}") from exc
        raise
    return _committed_version(open_table(uri, storage_options=storage_options), read_version, write_id)


def _committed_version(table: DeltaTable, read_version: int, write_id: str) -> int:
    """The version of the transaction tagged ``write_id``: the table's latest unless another writer committed
    after it, so the commit infos newer than ``read_version`` are searched for the tag."""
    latest = table.version()
    for entry in table.history(limit=max(1, latest - read_version)):  # newest first
        if entry.get(_WRITE_ID) == write_id:
            return int(entry["version"])
    log.warning("committed transaction %s not found in the history of %s after version %d; reporting the "
                "latest version %d", write_id, table.table_uri, read_version, latest)
    return latest
