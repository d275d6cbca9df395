"""Partition values and statistics at the edges: escaped directory names, other writers, replace limits."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import SparkSession

from recsys.lakehouse import TableStore
from recsys.lakehouse.file_stats import StatsAccumulator, stat_value_of
from recsys.lakehouse.partition_paths import hive_escape, hive_unescape

ODD_VALUES = ["a b", "a/b", "x=y", "50%", "é☃", None, "", "c:d", "q?#", "plain"]


def _rows(store: TableStore, name: str) -> list[tuple[int, str | None]]:
    return sorted((r["id"], r["p"]) for r in store.read(name).collect())


@pytest.mark.parametrize("row_group_rows", [None, 10], ids=["spark-writer", "arrow-writer"])
def test_odd_partition_values_round_trip(spark: SparkSession, store: TableStore, row_group_rows: int | None) -> None:
    df = spark.createDataFrame(list(enumerate(ODD_VALUES)), "id long, p string")
    store.write(df, "odd", partition_by=["p"], row_group_rows=row_group_rows)
    # an empty string is null, as in Spark's own writer
    assert _rows(store, "odd") == [(i, v or None) for i, v in enumerate(ODD_VALUES)]
    logged = {v for values in store.snapshot("odd").partition_values for v in values.values()}
    assert logged == {v or None for v in ODD_VALUES}


def test_escaping_matches_spark() -> None:
    for value in ODD_VALUES[:-1]:
        if value:
            assert hive_unescape(hive_escape(value)) == value
    assert hive_escape("é a/b:%") == "é a%2Fb%3A%25"  # Spark leaves non-ASCII and spaces as they are


def test_table_written_by_delta_rs_with_other_escaping(spark: SparkSession, store: TableStore) -> None:
    """delta-rs percent-encodes non-ASCII directory names, which Spark's partition discovery misreads: the
    values must come from the log."""
    uri = store.uri("foreign")
    write_deltalake(uri, pa.table({"id": [1, 2, 3, 4], "p": ["é", "a b", "plain", None]}), partition_by=["p"])
    assert any("%C3%A9" in path.name for path in Path(uri).iterdir())
    assert _rows(store, "foreign") == [(1, "é"), (2, "a b"), (3, "plain"), (4, None)]
    assert store.read("foreign").where("p = 'é'").count() == 1


def test_timestamp_partitions_read_back(spark: SparkSession, store: TableStore) -> None:
    stamps = [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, 3, 4, 5, 123456)]
    store.write(spark.createDataFrame(list(enumerate(stamps)), "id long, ts timestamp"), "stamped",
                partition_by=["ts"])
    assert sorted((r["id"], r["ts"].replace(tzinfo=None)) for r in store.read("stamped").collect()) == list(
        enumerate(stamps))


@pytest.mark.parametrize(("schema", "value", "message"), [
    ("id long, ts timestamp", dt.datetime(2024, 1, 1), "only string, date, integer and boolean"),
    ("id long, p double", 0.5, "only string, date, integer and boolean"),
    ("id long, p string", None, "null partition"),
    ("id long, p string", "", "null partition"),
])
def test_replace_partitions_refuses_what_it_cannot_do_exactly(
    spark: SparkSession, store: TableStore, tmp_path: Path, schema: str, value: object, message: str,
) -> None:
    column = schema.split(", ")[1].split()[0]
    df = spark.createDataFrame([(1, value)], schema)
    store.write(df, "r", partition_by=[column])
    version = store.version("r")
    files_before = sorted(p.name for p in Path(store.uri("r")).rglob("*.parquet"))
    with pytest.raises(ValueError, match=message):
        store.write(df, "r", mode="replace_partitions", partition_by=[column], replace_partitions={column: value})
    assert store.version("r") == version
    assert sorted(p.name for p in Path(store.uri("r")).rglob("*.parquet")) == files_before  # nothing written


def test_timestamp_ntz_statistics_are_wall_clock() -> None:
    assert stat_value_of(dt.datetime(2024, 1, 1, 12), upper=False) == "2024-01-01T12:00:00.000Z"
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert stat_value_of(aware, upper=False) == "2024-01-01T17:00:00.000Z"


def test_arrow_statistics_skip_nan_and_nested_columns() -> None:
    stats = StatsAccumulator(pa.schema([("id", pa.int64()), ("d", pa.float64()),
                                        ("s", pa.struct([("x", pa.int64())]))]))
    stats.add(pa.table({"id": [1, 2, 3], "d": [1.0, math.nan, 5.0], "s": [{"x": 1}, None, {"x": 3}]}))
    parsed = json.loads(stats.to_json())
    assert parsed["minValues"] == {"id": 1} and parsed["maxValues"] == {"id": 3}
    assert parsed["nullCount"] == {"id": 0, "d": 0}  # nested columns: none (a flat count is not valid Delta)


def test_struct_column_keeps_row_count_statistics(spark: SparkSession, store: TableStore) -> None:
    df = spark.createDataFrame([(1, (1,)), (2, None)], "id long, s struct<x: long>")
    store.write(df, "nested", row_group_rows=10)
    assert store.snapshot("nested").num_records == 2
