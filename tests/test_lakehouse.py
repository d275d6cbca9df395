"""The Delta table layer on real Spark and real files (delta-rs backend: no delta-spark jars here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.lakehouse import (
    ABSENT,
    ConcurrentWriteError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    TableStore,
    UnsupportedTableError,
    delta_log,
    read_arrow,
    spark_writer,
)

ALL_TYPES = T.StructType([
    T.StructField("s", T.StringType()),
    T.StructField("l", T.LongType()),
    T.StructField("i", T.IntegerType()),
    T.StructField("f", T.FloatType()),
    T.StructField("d", T.DoubleType()),
    T.StructField("ts", T.TimestampType()),
    T.StructField("day", T.DateType()),
    T.StructField("b", T.BooleanType()),
    T.StructField("ints", T.ArrayType(T.IntegerType())),
    T.StructField("floats", T.ArrayType(T.FloatType())),
])


def typed_frame(spark: SparkSession, n: int = 300, partitions: int = 3) -> DataFrame:
    base = spark.range(n, numPartitions=partitions)
    return base.select(
        F.when(F.col("id") % 17 == 0, None).otherwise(F.concat(F.lit("s-é/"), F.col("id"))).alias("s"),
        (F.col("id") * 1_000_000_007).alias("l"),
        F.col("id").cast("int").alias("i"),
        (F.col("id") / 3).cast("float").alias("f"),
        F.when(F.col("id") % 11 == 0, None).otherwise(F.col("id") / 7).alias("d"),
        F.timestamp_micros(F.col("id") * 123_456_789 + 7).alias("ts"),
        F.date_add(F.lit(dt.date(2024, 2, 27)), (F.col("id") % 4).cast("int")).alias("day"),
        (F.col("id") % 2 == 0).alias("b"),
        F.array(F.col("id").cast("int"), F.lit(-1)).alias("ints"),
        F.when(F.col("id") % 5 == 0, F.array().cast("array<float>"))
        .otherwise(F.array((F.col("id") / 2).cast("float"))).alias("floats"),
    )


def rows(df: DataFrame) -> list[tuple]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_round_trip_every_type(spark: SparkSession, store: TableStore) -> None:
    df = typed_frame(spark)
    version = store.write(df, "typed")
    assert version == 0
    back = store.read("typed")
    assert [(f.name, f.dataType) for f in back.schema.fields] == [(f.name, f.dataType) for f in ALL_TYPES]
    assert rows(back) == rows(df)


def test_partitioned_round_trip_keeps_partition_columns(spark: SparkSession, store: TableStore) -> None:
    df = typed_frame(spark)
    store.write(df, "by_day", partition_by=["day"])
    back = store.read("by_day")
    assert back.columns == df.columns  # partition column in its place, with its declared type
    assert back.schema["day"].dataType == T.DateType()
    assert rows(back) == rows(df)
    snap = store.snapshot("by_day")
    assert snap.partition_columns == ("day",)
    assert {v["day"] for v in snap.partition_values} == {"2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"}
    assert all("/day=" in f for f in snap.files)


def test_default_mode_refuses_to_overwrite(spark: SparkSession, store: TableStore) -> None:
    df = spark.range(5)
    store.write(df, "t")
    with pytest.raises(TableExistsError, match="already exists"):
        store.write(df, "t")
    assert store.version("t") == 0


def test_append_overwrite_and_time_travel(spark: SparkSession, store: TableStore) -> None:
    assert store.write(spark.range(0, 5), "t") == 0
    assert store.write(spark.range(5, 8), "t", mode="append") == 1
    assert store.write(spark.range(100, 102), "t", mode="overwrite") == 2
    assert store.version("t") == 2
    assert sorted(r.id for r in store.read("t", version=0).collect()) == list(range(5))
    assert sorted(r.id for r in store.read("t", version=1).collect()) == list(range(8))
    assert sorted(r.id for r in store.read("t").collect()) == [100, 101]
    # the files replaced by the overwrite are still on disk, but never read: no directory globbing
    assert len(list((Path(store.uri("t"))).rglob("*.parquet"))) > len(store.snapshot("t").files)
    with pytest.raises(TableNotFoundError):
        store.read("t", version=9)


def test_replace_partition_is_idempotent(spark: SparkSession, store: TableStore) -> None:
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    frame = spark.range(6).select(
        "id", F.when(F.col("id") < 3, F.lit(day1)).otherwise(F.lit(day2)).alias("run_date"))
    store.write(frame, "runs", partition_by=["run_date"])
    redo = spark.range(10, 14).select("id", F.lit(day2).alias("run_date"))
    for _ in range(2):
        store.write(redo, "runs", mode="replace_partitions", partition_by=["run_date"],
                    replace_partitions={"run_date": day2})
        assert sorted((r.id, r.run_date) for r in store.read("runs").collect()) == [
            (0, day1), (1, day1), (2, day1), (10, day2), (11, day2), (12, day2), (13, day2)]


@pytest.mark.parametrize("row_group_rows", [None, 10], ids=["spark-writer", "exact-row-groups"])
def test_replace_partition_rejects_rows_of_other_partitions(spark: SparkSession, store: TableStore,
                                                            row_group_rows: int | None) -> None:
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    store.write(spark.range(3).select("id", F.lit(day1).alias("run_date")), "runs", partition_by=["run_date"])
    before = sorted(p.name for p in Path(store.uri("runs")).rglob("*"))
    stray = spark.range(2).select("id", F.lit(day1).alias("run_date"))
    with pytest.raises(Exception, match="every row must belong to the replaced partition"):
        store.write(stray, "runs", mode="replace_partitions", partition_by=["run_date"],
                    replace_partitions={"run_date": day2}, row_group_rows=row_group_rows)
    assert store.version("runs") == 0
    assert sorted(p.name for p in Path(store.uri("runs")).rglob("*")) == before  # its files are removed


def test_lakehouse_path_with_a_space_or_percent_sign(spark: SparkSession, store: TableStore,
                                                     tmp_path: Path) -> None:
    """A local lakehouse path is a path, not a URI: spaces stay as they are; "%" (which delta-rs would decode
    as a URI escape) is refused up front."""
    with pytest.raises(ValueError, match="contains '%'"):
        TableStore(spark, dataclasses.replace(store.storage, lakehouse=str(tmp_path / "p%41q")))
    folder = "with space"
    local = TableStore(spark, dataclasses.replace(store.storage, lakehouse=str(tmp_path / folder)))
    frame = spark.range(6, numPartitions=2).select("id", (F.col("id") % 2).cast("string").alias("p"))
    local.write(frame, "t", partition_by=["p"])
    local.write(frame, "t", mode="append", partition_by=["p"])
    local.write(frame, "exact", row_group_rows=2)
    assert local.read("t").count() == 12 and local.read("exact").count() == 6
    assert read_arrow(local.snapshot("t")).num_rows == 12
    assert (tmp_path / folder / "t" / "_delta_log").is_dir()


def test_failed_write_leaves_previous_version(spark: SparkSession, store: TableStore) -> None:
    store.write(spark.range(10, numPartitions=2), "t")
    before = sorted(p.name for p in Path(store.uri("t")).rglob("*"))

    @F.udf("long")
    def explode_on_seven(x: int) -> int:
        if x == 7:
            raise ValueError("boom")
        return x

    broken = spark.range(10, numPartitions=4).select(explode_on_seven("id").alias("id"))
    with pytest.raises(Exception, match="boom"):
        store.write(broken, "t", mode="overwrite")
    assert store.version("t") == 0
    assert sorted(r.id for r in store.read("t").collect()) == list(range(10))
    # the failed write's partial output is gone, not left behind
    assert sorted(p.name for p in Path(store.uri("t")).rglob("*")) == before


def test_files_of_an_uncommitted_write_are_orphans_for_vacuum(
    spark: SparkSession, store: TableStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.write(spark.range(10, numPartitions=2), "t")

    def driver_dies(*args: object, **kwargs: object) -> int:
        raise RuntimeError("driver killed between writing the files and committing them")

    monkeypatch.setattr(delta_log, "commit", driver_dies)
    with pytest.raises(RuntimeError, match="driver killed"):
        store.write(spark.range(100, 110, numPartitions=2), "t", mode="overwrite")
    monkeypatch.undo()
    assert store.version("t") == 0
    # after the commit was attempted nothing is deleted (it might have landed); vacuum removes true orphans
    orphans = store.vacuum("t", retention_hours=0, dry_run=True)
    assert len(orphans) == 2
    with pytest.raises(ValueError, match="write still running"):
        store.vacuum("t", retention_hours=0)
    store.vacuum("t", retention_hours=0, allow_short_retention=True)
    assert sorted(r.id for r in store.read("t").collect()) == list(range(10))


def test_write_leaves_only_data_files_and_statistics(spark: SparkSession, store: TableStore) -> None:
    store.write(typed_frame(spark), "typed", partition_by=["day"])
    table_dir = Path(store.uri("typed"))
    names = {p.name for p in table_dir.rglob("*") if p.is_file() and "_delta_log" not in p.parts}
    assert names and all(n.endswith(".parquet") and not n.startswith((".", "_")) for n in names)
    actions = DeltaTable(str(table_dir)).get_add_actions(flatten=True)
    import pyarrow as pa

    actions = pa.table(actions)
    assert sum(actions.column("num_records").to_pylist()) == 300
    assert min(actions.column("min.i").to_pylist()) == 0 and max(actions.column("max.i").to_pylist()) == 299
    assert sum(actions.column("null_count.s").to_pylist()) == 18  # ids divisible by 17 in 0..299
    assert sum(actions.column("null_count.d").to_pylist()) == 28
    first = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=7)
    lows = [v for v in actions.column("min.ts").to_pylist() if v is not None]
    assert min(lows).replace(tzinfo=dt.timezone.utc) <= first


def test_schema_mismatch_rejected(spark: SparkSession, store: TableStore) -> None:
    store.write(spark.range(3).select("id", F.lit("a").alias("name")), "t")
    with pytest.raises(SchemaMismatchError, match="type changes name: table string vs write int"):
        store.write(spark.range(3).select("id", F.lit(1).alias("name")), "t", mode="append")
    with pytest.raises(SchemaMismatchError, match="unexpected columns"):
        store.write(spark.range(3).select("id", F.lit("a").alias("name"), F.lit(1).alias("x")), "t",
                    mode="append")
    with pytest.raises(SchemaMismatchError, match="partitioned by"):
        store.write(spark.range(3).select("id", F.lit("a").alias("name")), "t", mode="overwrite",
                    partition_by=["name"])
    # same columns in another order are conformed, not rejected
    store.write(spark.range(3).select(F.lit("b").alias("name"), "id"), "t", mode="append")
    assert store.read("t").count() == 6
    assert store.version("t") == 1


def test_concurrent_commit_conflict_surfaces(spark: SparkSession, store: TableStore) -> None:
    frame = spark.range(4).select("id", (F.col("id") % 2).cast("string").alias("p"))
    store.write(frame, "t", partition_by=["p"])
    read_by_loser = delta_log.open_table(store.uri("t"))  # the loser loaded version 0 ...
    store.write(frame.where("p = '1'"), "t", mode="replace_partitions", partition_by=["p"],
                replace_partitions={"p": "1"})  # ... and the winner committed version 1 meanwhile
    with pytest.raises(ConcurrentWriteError, match="lost a race"):
        delta_log.commit(store.uri("t"), read_by_loser, store.schema("t"), ["p"], [], "replace_partitions",
                         [("p", "=", "1")], "loser")
    assert store.version("t") == 1
    assert store.read("t").count() == 4


def test_write_from_a_stale_read_is_refused(spark: SparkSession, store: TableStore) -> None:
    """A read-modify-write job passes the version it read: another job's commit since then refuses the write
    before any file is written, whatever the mode (an overwrite would drop that commit's rows, an append
    would have been judged against a table that changed)."""
    assert store.current_version("t") == ABSENT
    frame = spark.range(3, numPartitions=1)
    store.write(frame, "t")
    read = store.current_version("t")
    store.write(frame, "t", mode="append")  # another job
    for mode in ("overwrite", "append"):
        with pytest.raises(ConcurrentWriteError, match="read version 0"):
            store.write(frame, "t", mode=mode, read_version=read)
    with pytest.raises(ConcurrentWriteError, match="version 1, but this job read version -1"):
        store.write(frame, "t", mode="overwrite", read_version=ABSENT)  # it found no table
    assert store.version("t") == 1 and store.read("t").count() == 6
    assert store.write(frame, "t", mode="overwrite", read_version=1) == 2  # up to date: written


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_commit_during_a_pinned_write_is_refused(spark: SparkSession, store: TableStore,
                                                  monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Another job commits while the files of a pinned write are being written (injected: the race cannot be
    timed in a test): the commit fails, even an append (it is not retried on top of the other commit)."""
    frame = spark.range(3, numPartitions=1)
    store.write(frame, "t")
    real = spark_writer.write_files

    def racing(*args: object, **kwargs: object) -> list[dict[str, object]]:
        files = real(*args, **kwargs)  # type: ignore[arg-type]
        write_deltalake(store.uri("t"), pa.table({"id": pa.array([99], pa.int64())}), mode="append")
        return files

    monkeypatch.setattr(spark_writer, "write_files", racing)
    with pytest.raises(ConcurrentWriteError):
        store.write(frame, "t", mode=mode, read_version=0)  # type: ignore[arg-type]
    assert store.version("t") == 1 and store.read("t").count() == 4


def test_table_is_readable_by_deltalake_and_pandas(spark: SparkSession, store: TableStore) -> None:
    df = typed_frame(spark, n=50)
    store.write(df, "typed", partition_by=["b"])
    table = DeltaTable(store.uri("typed"))
    assert table.version() == 0
    import pandas as pd

    pandas_frame: pd.DataFrame = df.toPandas()
    expected = pandas_frame.sort_values("l").reset_index(drop=True)
    # deltalake gives the snapshot (schema, live files, partition values); pyarrow/pandas read the files
    via_layer = read_arrow(store.snapshot("typed")).sort_by("l")
    assert via_layer.to_pylist() == df.toArrow().sort_by("l").to_pylist()
    actions = table.get_add_actions(flatten=True)
    import pyarrow as pa

    actions_table = pa.table(actions)
    pieces = []
    for path, flag in zip(actions_table.column("path").to_pylist(),
                          actions_table.column("partition.b").to_pylist(), strict=True):
        piece = pd.read_parquet(Path(store.uri("typed")) / path)
        piece["b"] = flag
        pieces.append(piece)
    plain = pd.concat(pieces).sort_values("l").reset_index(drop=True)
    assert plain["l"].tolist() == expected["l"].tolist()
    assert plain["s"].fillna("<null>").tolist() == expected["s"].fillna("<null>").tolist()
    assert [list(x) for x in plain["ints"]] == [list(x) for x in expected["ints"]]


def test_table_is_readable_by_polars(spark: SparkSession, store: TableStore) -> None:
    polars = pytest.importorskip("polars")
    store.write(spark.range(20).select("id", (F.col("id") % 3).cast("string").alias("p")), "t",
                partition_by=["p"])
    frame = polars.read_delta(store.uri("t"))
    assert sorted(frame["id"].to_list()) == list(range(20))
    assert sorted(set(frame["p"].to_list())) == ["0", "1", "2"]


def test_row_groups_sized_from_config(spark: SparkSession, store: TableStore) -> None:
    store.write(spark.range(10_000, numPartitions=2), "t", row_group_rows=1000)
    snap = store.snapshot("t")
    groups = [pq.ParquetFile(f.replace("file://", "")).num_row_groups for f in snap.files]
    assert sum(groups) == 10
    stats = json.loads(DeltaTable(store.uri("t")).get_add_actions(flatten=True).column("num_records")
                       .to_pylist().__repr__().replace("None", "null"))
    assert sum(stats) == 10_000


def test_row_group_bytes_from_config(spark: SparkSession, store: TableStore, tmp_path: Path) -> None:
    small = TableStore(spark, dataclasses.replace(store.storage, lakehouse=str(tmp_path / "small"),
                                                  row_group_bytes=64 * 1024))
    frame = spark.range(300_000, numPartitions=1).select("id", (F.col("id") * 7).cast("string").alias("s"))
    small.write(frame, "t")
    store.write(frame, "t")
    [small_file] = small.snapshot("t").files
    [default_file] = store.snapshot("t").files
    assert pq.ParquetFile(small_file.replace("file://", "")).num_row_groups > 3
    assert pq.ParquetFile(default_file.replace("file://", "")).num_row_groups == 1


def test_empty_write_creates_table_with_schema(spark: SparkSession, store: TableStore) -> None:
    store.write(spark.createDataFrame([], ALL_TYPES), "empty")
    back = store.read("empty")
    assert back.count() == 0
    assert back.schema == ALL_TYPES


def test_listing_and_history(spark: SparkSession, store: TableStore) -> None:
    store.write(spark.range(2), "a")
    store.write(spark.range(2), "b")
    store.write(spark.range(2), "b", mode="append")
    assert store.list_tables() == ["a", "b"]
    history = store.history("b")
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["recsys.operation"] == "recsys append b"


def test_optimize_compacts_and_keeps_rows(spark: SparkSession, store: TableStore) -> None:
    for start in range(0, 40, 10):
        store.write(spark.range(start, start + 10, numPartitions=2), "t", mode="append")
    before = len(store.snapshot("t").files)
    store.optimize("t")
    after = store.snapshot("t")
    assert len(after.files) < before
    assert sorted(r.id for r in store.read("t").collect()) == list(range(40))


def test_partitioned_reads_across_writes_and_optimize(spark: SparkSession, store: TableStore) -> None:
    def batch(start: int) -> DataFrame:
        return spark.range(start, start + 6, numPartitions=2).select(
            "id", F.date_add(F.lit(dt.date(2024, 1, 1)), (F.col("id") % 3).cast("int")).alias("day"))

    store.write(batch(0), "t", partition_by=["day"])
    store.write(batch(6), "t", mode="append", partition_by=["day"])  # a second write directory
    expected = sorted((i, dt.date(2024, 1, 1 + i % 3)) for i in range(12))
    assert sorted((r.id, r.day) for r in store.read("t").collect()) == expected
    store.optimize("t")  # delta-rs puts the compacted files under the table root, not in a write directory
    store.write(batch(12), "t", mode="append", partition_by=["day"])
    expected += sorted((i, dt.date(2024, 1, 1 + i % 3)) for i in range(12, 18))
    table = store.read("t")
    assert sorted((r.id, r.day) for r in table.collect()) == sorted(expected)
    one_day = table.where(F.col("day") == F.lit(dt.date(2024, 1, 2)))
    assert sorted(r.id for r in one_day.collect()) == [i for i in range(18) if i % 3 == 1]


@pytest.mark.parametrize("exact_row_groups", [False, True], ids=["spark-writer", "arrow-writer"])
def test_zstd_level_reaches_both_writers(spark: SparkSession, store: TableStore, tmp_path: Path,
                                         exact_row_groups: bool) -> None:
    frame = spark.range(20_000, numPartitions=1).select(
        F.sha2(F.concat(F.lit("repeat "), (F.col("id") % 500).cast("string")), 256).alias("s"))
    sizes = {}
    for level in (1, 19):
        leveled = TableStore(spark, dataclasses.replace(store.storage, lakehouse=str(tmp_path / f"z{level}"),
                                                        zstd_level=level))
        leveled.write(frame, "t", row_group_rows=4096 if exact_row_groups else None)
        sizes[level] = sum(Path(f.replace("file://", "")).stat().st_size for f in leveled.snapshot("t").files)
        assert leveled.read("t").count() == 20_000
    assert sizes[19] < sizes[1]


def test_write_returns_its_own_version_when_another_writer_commits_next(
        spark: SparkSession, store: TableStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent writer committing between our commit and the version lookup (injected here: the race
    cannot be timed in a test) must not make the write report that writer's version."""
    frame = spark.range(10, numPartitions=1)
    assert store.write(frame, "t") == 0
    real = delta_log._committed_version

    def racing(table: DeltaTable, read_version: int, write_id: str) -> int:
        write_deltalake(store.uri("t"), pa.table({"id": pa.array([99], pa.int64())}), mode="append")
        return real(delta_log.open_table(store.uri("t")), read_version, write_id)

    monkeypatch.setattr(delta_log, "_committed_version", racing)
    assert store.write(frame, "t", mode="append") == 1
    assert delta_log.open_table(store.uri("t")).version() == 2
    assert store.read("t").count() == 21


def _commit_log_entry(table_dir: Path, *actions: dict) -> None:
    """Append a hand-made commit (the actions delta-spark would write) to a table's log."""
    log_dir = table_dir / "_delta_log"
    version = max(int(p.stem) for p in log_dir.glob("*.json")) + 1
    (log_dir / f"{version:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))


@pytest.mark.parametrize("feature", ["deletionVectors", "columnMapping"])
def test_tables_whose_files_are_not_their_rows_are_refused(spark: SparkSession, store: TableStore,
                                                           feature: str) -> None:
    """A table delta-spark gave deletion vectors (deleted rows live on in the files) or column mapping (files
    name columns physically) cannot be read from its file list: a clear error, never wrong rows."""
    store.write(typed_frame(spark, 20, 1), "t", mode="overwrite")
    table_dir = Path(store.uri("t"))
    if feature == "deletionVectors":
        _commit_log_entry(table_dir, {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                                                   "readerFeatures": ["deletionVectors"],
                                                   "writerFeatures": ["deletionVectors"]}})
    else:
        first = json.loads(next(line for line in (table_dir / "_delta_log" / f"{0:020d}.json").read_text()
                                .splitlines() if '"metaData"' in line))
        schema = json.loads(first["metaData"]["schemaString"])
        for i, field in enumerate(schema["fields"], 1):  # delta-spark names each column's files physically
            field["metadata"] = {"delta.columnMapping.id": i, "delta.columnMapping.physicalName": f"col-{i}"}
        first["metaData"]["schemaString"] = json.dumps(schema)
        first["metaData"]["configuration"] = {"delta.columnMapping.mode": "name",
                                              "delta.columnMapping.maxColumnId": str(len(schema["fields"]))}
        _commit_log_entry(table_dir, {"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}}, first)
    snap = store.snapshot("t")
    assert snap.num_records is None and snap.files  # log statistics would count deleted rows
    version = store.version("t")
    for use in (lambda: store.read("t"), lambda: read_arrow(snap), lambda: store.optimize("t"),
                lambda: store.write(typed_frame(spark, 5, 1), "t", mode="append")):
        with pytest.raises(UnsupportedTableError, match="delta-spark") as err:
            use()
        assert ("deletionVectors" if feature == "deletionVectors" else "column mapping") in str(err.value)
    assert store.version("t") == version  # the refused write committed nothing
    assert rows(store.read("t", version=0)) == rows(typed_frame(spark, 20, 1))  # earlier versions still read
