"""Raw user ids stay out of every table and message, whatever shape the input takes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from etl_helpers import KEY, run, write
from pyspark.sql import SparkSession
from test_etl_privacy_incremental import lakehouse_strings

from recsys.etl import reasons as R
from recsys.etl.errors import InputError
from recsys.etl.pseudonymize import pseudonym
from recsys.etl.sources import csv_headers

RAW = ("alice-7731", "bob-8842", "carol-9953", "dave-4410", "erin-5521")
EVENTS = ("etl.missing_item_policy=keep", "etl.events.items=none")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def _no_raw_ids(lakehouse: Path) -> None:
    text = lakehouse_strings(lakehouse)
    assert not [raw for raw in RAW if raw in text]


def test_csv_files_with_different_column_orders(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events1.csv", "user_id,item_id,timestamp,event_type\nalice-7731,i1,2024-01-02,click\n")
    write(tmp_path / "in" / "events2.csv", "item_id,user_id,event_type,timestamp\ni2,bob-8842,click,2024-01-03\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert row["accepted"] == 2 and row["invariant_ok"]
    assert {r.item_id for r in store.read("interactions").collect()} == {"i1", "i2"}
    users = {pseudonym(KEY.encode(), u) for u in ("alice-7731", "bob-8842")}
    assert {r.user_id for r in store.read("user_index").collect()} == users
    _no_raw_ids(tmp_path / "lh")


def test_malformed_csv_lines_never_expose_the_user_field(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events.csv", "\n".join([
        "item_id,user_id,timestamp,event_type",
        "i1,alice-7731,2024-01-02,click",
        '"i,2",bob-8842,2024-01-02,click,extra',   # quoted comma before the user field, one field too many
        'i3,carol-9953,"2024-01-02,click',         # unbalanced quote: fields cannot be told apart
        "0,i4,dave-4410,2024-01-02,click",         # an extra column in front: the user field moved
    ]) + "\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert row["quarantine_by_reason"] == {R.MALFORMED: 3} and row["invariant_ok"]
    records = sorted(r.raw_record for r in store.read("quarantine").collect())
    expected = "<record withheld: 5 fields where 4 were expected, so the user field cannot be told apart"
    assert [r.startswith(expected) for r in records].count(True) == 2
    assert any(r.startswith("<record withheld") and not r.startswith(expected) for r in records)
    _no_raw_ids(tmp_path / "lh")


def test_movielens_lines_with_shifted_fields(spark: SparkSession, tmp_path: Path) -> None:
    """A ratings or tags file written with an index column (pandas' ``to_csv`` default): every line has one
    field too many and its user id is not the first field, so the records are withheld, not half-pseudonymized."""
    write(tmp_path / "in" / "ratings.csv", ",userId,movieId,rating,timestamp\n0,9876501,10,4.0,964982703\n"
          "1,12345,10,4.0,964982703\n")
    write(tmp_path / "in" / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n")
    write(tmp_path / "in" / "tags.csv", "userId,movieId,tag,timestamp\n0,5550001,10,funny,964982703\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in")
    assert row["quarantine_by_reason"] == {R.FIELD_COUNT: 3} and row["invariant_ok"]
    text = lakehouse_strings(tmp_path / "lh")
    assert not [raw for raw in ("9876501", "12345", "5550001") if raw in text]
    records = {r.raw_record for r in store.read("quarantine").collect()}
    assert all(r.startswith("<record withheld") for r in records)


def test_malformed_json_with_single_quotes(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events.jsonl", "\n".join([
        '{"user_id": "alice-7731", "item_id": "i1", "timestamp": "2024-01-02", "event_type": "click"}',
        "{'user_id': 'bob-8842', 'item_id': 'i1', 'timestamp': '2024-01-0",
        '{"item_id": "i1", "note": "dave-4410 wrote", "user": "x", "timestamp": "2024-01-0',
    ]) + "\n")
    row, _ = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                 overrides=(*EVENTS, "etl.events.format=json", "etl.events.users=none"))
    assert row["quarantine_by_reason"] == {R.MALFORMED: 2} and row["invariant_ok"]
    _no_raw_ids(tmp_path / "lh")


@pytest.mark.parametrize("users", [
    "country,user_id\nFR,alice-7731\nDE,bob-8842,extra\n",
    '{"country": "FR", "user_id": "alice-7731"}\n{"country": "DE", "user_id": "bob-8842"\n',
], ids=["csv", "json"])
def test_malformed_user_table_rows(spark: SparkSession, tmp_path: Path, users: str) -> None:
    fmt = "json" if users.startswith("{") else "csv"
    events = ('{"user_id": "alice-7731", "item_id": "i1", "timestamp": "2024-01-02", "event_type": "click"}\n'
              if fmt == "json" else "user_id,item_id,timestamp,event_type\nalice-7731,i1,2024-01-02,click\n")
    suffix = "jsonl" if fmt == "json" else "csv"
    write(tmp_path / "in" / f"events.{suffix}", events)
    write(tmp_path / "in" / f"users.{suffix}", users)
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=(*EVENTS, f"etl.events.format={fmt}"))
    assert row["accepted"] == 1 and row["invariant_ok"]
    assert store.read("quarantine").where("entity = 'users'").count() == 1
    _no_raw_ids(tmp_path / "lh")


def test_headerless_csv_error_names_no_value(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events.csv", "alice-7731,i1,2024-01-02,click\n")
    with pytest.raises(ValueError, match="header") as err:
        run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert not [raw for raw in RAW if raw in str(err.value)]


def test_headerless_file_among_good_ones_is_an_error(spark: SparkSession, tmp_path: Path) -> None:
    """A second file without a header would be read by its first row's values as column names, its rows
    landing under the wrong columns (and its first row lost): the job refuses it instead."""
    write(tmp_path / "in" / "events1.csv", "user_id,item_id,timestamp,event_type\nalice-7731,i1,2024-01-02,click\n")
    write(tmp_path / "in" / "events2.csv", "bob-8842,i2,2024-01-03,click\ncarol-9953,i2,2024-01-03,click\n")
    with pytest.raises(ValueError, match=r"events2\.csv") as err:
        run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert not [raw for raw in RAW if raw in str(err.value)]
    assert not (tmp_path / "lh" / "interactions").exists()  # nothing committed


def test_movielens_user_table_line_with_shifted_fields(spark: SparkSession, tmp_path: Path) -> None:
    """ml-1m ``users.dat`` with an extra field in front: the raw user id is not the first field, so the
    record is withheld."""
    write(tmp_path / "in" / "ratings.dat", "1::10::4::964982703\n")
    write(tmp_path / "in" / "movies.dat", "10::Heat (1995)::Action\n")
    write(tmp_path / "in" / "users.dat", "1::M::25::10::48067\n0::9876501::F::35::7::10001\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in")
    assert row["accepted"] == 1 and row["invariant_ok"]
    (bad,) = store.read("quarantine").where("entity = 'users'").collect()
    assert bad.reason == R.MALFORMED and "<record withheld: 6 fields where 5 were expected" in bad.raw_record
    assert "9876501" not in lakehouse_strings(tmp_path / "lh")


@pytest.mark.parametrize("headerless", ["movies.csv", "tags.csv"])
def test_headerless_movielens_catalog_file_is_an_error(spark: SparkSession, tmp_path: Path,
                                                       headerless: str) -> None:
    """Spark would drop a headerless catalog file's first row (and log its values as a bad header)."""
    files = {"ratings.csv": "userId,movieId,rating,timestamp\n9876501,10,4.0,964982703\n",
             "movies.csv": "movieId,title,genres\n10,Heat (1995),Action\n",
             "tags.csv": "userId,movieId,tag,timestamp\n5550001,10,funny,964982703\n"}
    files[headerless] = files[headerless].split("\n", 1)[1]
    for name, text in files.items():
        write(tmp_path / "in" / name, text)
    with pytest.raises(ValueError, match=rf"{headerless}.*first line is not the header") as err:
        run(spark, tmp_path / "lh", tmp_path / "in")
    assert "5550001" not in str(err.value) and "Heat" not in str(err.value)
    assert not (tmp_path / "lh" / "interactions").exists()  # nothing committed


def test_catalog_folders_of_spark_compressed_part_files(spark: SparkSession, tmp_path: Path) -> None:
    """``movies.csv``/``tags.csv`` as folders Spark wrote with codecs in Hadoop framing (which pyarrow cannot
    decode): the header check reads their first lines through Spark's codecs (in a folder whose name Spark
    percent-encodes in the file URIs it lists)."""
    src = tmp_path / "in put"
    write(src / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    for name, codec, rows, schema in (
        ("movies.csv", "snappy", [("10", "Heat (1995)", "Action")], "movieId string, title string, genres string"),
        ("tags.csv", "lz4", [("5550001", "10", "noir", "964982703")],
         "userId string, movieId string, tag string, timestamp string"),
    ):
        (spark.createDataFrame(rows, schema).coalesce(1).write.option("header", True)
         .option("compression", codec).csv(str(src / name)))
    parts = sorted(str(f) for f in (src / "movies.csv").glob("part-*"))
    assert parts and parts[0].endswith(".csv.snappy")
    assert csv_headers(parts, spark) == [["movieId", "title", "genres"]]
    with pytest.raises(InputError, match="only readable through Spark"):
        csv_headers(parts)
    row, store = run(spark, tmp_path / "lh", src)
    assert row["accepted"] == 1 and row["invariant_ok"] and row["quarantine_by_reason"] == {}
    item = store.read("items").first()
    assert item is not None and item.title == "Heat" and "noir" in item.text


def test_rfc4180_doubled_quotes(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    write(tmp_path / "in" / "movies.csv", 'movieId,title,genres\n10,"Foo ""Bar"", The (1999)",Drama\n')
    row, store = run(spark, tmp_path / "lh", tmp_path / "in")
    assert row["quarantine_by_reason"] == {} and row["accepted"] == 1
    item = store.read("items").first()
    assert item is not None and (item.title, item.year) == ('Foo "Bar", The', 1999)


def test_run_date_cutoff_is_utc_whatever_the_driver_zone(spark: SparkSession, tmp_path: Path, new_york: None) -> None:
    day_after = int(dt.datetime(2024, 7, 1, 2, tzinfo=dt.timezone.utc).timestamp())  # 22:00 on 06-30 in New York
    last_second = int(dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp())
    write(tmp_path / "in" / "ratings.csv",
          f"userId,movieId,rating,timestamp\n1,10,4.0,{day_after}\n1,20,4.0,{last_second}\n")
    write(tmp_path / "in" / "movies.csv", "movieId,title,genres\n10,A (1990),Drama\n20,B (1991),Drama\n")
    row, _ = run(spark, tmp_path / "lh", tmp_path / "in", run_date=dt.date(2024, 6, 30))
    assert row["quarantine_by_reason"] == {R.TS_FUTURE: 1} and row["accepted"] == 1
