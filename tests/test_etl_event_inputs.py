"""Generic event inputs as they come: epoch timestamps to the millisecond, JSON and Parquet files with array
columns, CSV records spanning lines, and incremental batches of a source without an item catalog."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from etl_helpers import KEY, run, write
from pyspark.sql import SparkSession

from recsys.etl import reasons as R
from recsys.lakehouse import TableStore

HEADER = "user_id,item_id,timestamp,event_type\n"
UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def _stamps(store: TableStore) -> list[dt.datetime]:
    return sorted(r.ts.replace(tzinfo=UTC) for r in store.read("interactions").collect())


@pytest.mark.parametrize(("fmt", "stamps"), [
    ("epoch_ms", ("1704189600123", "1704189600456", "1704189600999")),
    ("epoch_s", ("1704189600.123", "1704189600.456", "1.7041896009990e9")),
])
def test_epoch_timestamps_keep_their_milliseconds(spark: SparkSession, tmp_path: Path, fmt: str,
                                                  stamps: tuple[str, ...]) -> None:
    """Three events of one user and item within one second are three events (they were cut to the second and
    two were removed as duplicates)."""
    lines = "".join(f"u1,i1,{s},click\n" for s in stamps)
    write(tmp_path / "in" / "events.csv", HEADER + lines)
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=("etl.events.items=none", f"etl.events.timestamp_format={fmt}"))
    assert (row["accepted"], row["duplicates_removed"], row["invariant_ok"]) == (3, 0, True)
    base = dt.datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert _stamps(store) == [base + dt.timedelta(milliseconds=ms) for ms in (123, 456, 999)]


def test_incremental_batches_without_a_catalog_index_their_new_items(spark: SparkSession, tmp_path: Path) -> None:
    """No catalog was ever given: the full run indexes the events' items, and so does an incremental run (its
    new items were quarantined as missing from a catalog that does not exist)."""
    write(tmp_path / "b1" / "events.csv", HEADER + "u1,i1,2024-01-02T10:00:00,click\n")
    write(tmp_path / "b2" / "events.csv", HEADER + "u2,i2,2024-01-03T10:00:00,click\nu1,i1,2024-01-04T10:00:00,view\n")
    conf = ("etl.events.items=none",)
    run(spark, tmp_path / "lh", tmp_path / "b1", source="events", overrides=conf)
    row, store = run(spark, tmp_path / "lh", tmp_path / "b2", source="events", mode="incremental", overrides=conf)
    assert (row["accepted"], row["quarantined"], row["invariant_ok"]) == (2, 0, True)
    assert sorted((r.item_id, r.item_idx) for r in store.read("item_index").collect()) == [("i1", 0), ("i2", 1)]


def test_incremental_batch_checks_new_items_against_the_catalog_loaded_before(spark: SparkSession,
                                                                              tmp_path: Path) -> None:
    """A catalog came with the first batch: a later batch without one still quarantines items no catalog
    named, and keeps the catalogued ones."""
    write(tmp_path / "b1" / "events.csv", HEADER + "u1,i1,2024-01-02T10:00:00,click\n")
    write(tmp_path / "b1" / "items.csv", "item_id,title\ni1,Kettle\ni3,Toaster\n")
    write(tmp_path / "b2" / "events.csv", HEADER + "u2,i2,2024-01-03T10:00:00,click\nu2,i3,2024-01-03T11:00:00,click\n")
    run(spark, tmp_path / "lh", tmp_path / "b1", source="events")
    row, store = run(spark, tmp_path / "lh", tmp_path / "b2", source="events", mode="incremental")
    assert (row["accepted"], row["quarantine_by_reason"]) == (1, {R.UNKNOWN_ITEM: 1})
    assert {r.item_id for r in store.read("interactions").collect()} == {"i1", "i3"}


def test_csv_records_spanning_lines(spark: SparkSession, tmp_path: Path) -> None:
    """With ``etl.events.items_csv_multiline`` a quoted description holding a line break is one catalog row."""
    write(tmp_path / "in" / "events.csv", HEADER + "u1,i1,2024-01-02T10:00:00,click\n")
    write(tmp_path / "in" / "items.csv", 'item_id,title,description\ni1,Kettle,"Boils water.\nRed, 1.5 l"\n')
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=("etl.events.items_csv_multiline=true",))
    assert (row["accepted"], row["quarantined"]) == (1, 0)
    item = store.read("items").first()
    assert item is not None and item.description == "Boils water.\nRed, 1.5 l"
    assert "Boils water.\nRed, 1.5 l" in item.text
    # line by line (the default) Spark ends the quoted field at the line break; the rest of the record is a
    # malformed line, kept in quarantine
    row, store = run(spark, tmp_path / "lh2", tmp_path / "in", source="events")
    assert row["accepted"] == 1
    rejected = [(r.reason, r.raw_record) for r in store.read("quarantine").where("entity = 'items'").collect()]
    assert rejected == [(R.MALFORMED, 'Red, 1.5 l"')]


def test_json_lines_catalog_with_array_categories(spark: SparkSession, tmp_path: Path) -> None:
    events = [{"user_id": "u1", "item_id": "i1", "timestamp": "2024-01-02T10:00:00", "event_type": "click"},
              {"user_id": "u2", "item_id": 7, "timestamp": "2024-01-02T11:00:00", "event_type": "view"}]
    items = [{"item_id": "i1", "title": "Kettle", "categories": ["Kitchen", " Home ", ""]},
             {"item_id": 7, "title": "Mug", "categories": ["Cups"]}, {"item_id": "i9", "title": "Pan"}]
    write(tmp_path / "in" / "events.jsonl", "\n".join(json.dumps(e) for e in events) + "\n")
    write(tmp_path / "in" / "items.jsonl", "\n".join(json.dumps(i) for i in items) + "\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=("etl.events.format=json", "etl.events.users=none"))
    assert (row["accepted"], row["quarantined"]) == (2, 0)
    got = {r.item_id: list(r.categories) for r in store.read("items").collect()}
    assert got == {"i1": ["Kitchen", "Home"], "7": ["Cups"], "i9": []}  # was ['["Kitchen"," Home ",""]']


def test_parquet_events_catalog_and_array_categories(spark: SparkSession, tmp_path: Path) -> None:
    """Parquet inputs: typed columns (integer ids, timestamps as epoch seconds) are read as text, array
    categories as lists."""
    (tmp_path / "in").mkdir()
    day = tmp_path / "in" / "events" / "dt=2024-01-02"  # a partitioned folder, read as Spark reads it
    day.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": pa.array([11, 12, 11], pa.int64()), "item_id": ["i1", "i2", "i1"],
                             "timestamp": pa.array([1704189600, 1704193200, 1704189600], pa.int64()),
                             "event_type": ["click", "purchase", "click"]}), day / "part-0.parquet")
    pq.write_table(pa.table({"item_id": ["i1", "i2"], "title": ["Kettle", "Mug"],
                             "categories": pa.array([["Kitchen", " Home "], None], pa.list_(pa.string()))}),
                   tmp_path / "in" / "items.parquet")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=("etl.events.format=parquet", "etl.events.timestamp_format=epoch_s",
                                "etl.events.users=none"))
    assert (row["input_rows"], row["accepted"], row["duplicates_removed"], row["invariant_ok"]) == (3, 2, 1, True)
    got = {r.item_id: (list(r.categories), r.text) for r in store.read("items").collect()}
    assert got["i1"] == (["Kitchen", "Home"], "Kettle. Genres: Kitchen, Home.")
    assert got["i2"][0] == []
    weights = sorted((r.item_id, r.event_type, r.weight) for r in store.read("interactions").collect())
    assert weights == [("i1", "click", 1.0), ("i2", "purchase", 3.0)]


def test_categories_are_trimmed_of_spaces_only(spark: SparkSession, tmp_path: Path) -> None:
    """Each category loses its surrounding spaces and nothing else (``transform(c, trim)`` passed the element's
    position as the characters to trim: "Top 100" lost its zeros, " 1 Home" its ones)."""
    write(tmp_path / "in" / "events.csv", HEADER + "u1,i1,2024-01-02T10:00:00,click\n")
    write(tmp_path / "in" / "items.csv", "item_id,title,categories\ni1,Kettle,Top 100| 1 Home |22\n")
    run_row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events")
    assert run_row["accepted"] == 1
    item = store.read("items").first()
    assert item is not None and list(item.categories) == ["Top 100", "1 Home", "22"]
