"""ETL: quarantine reasons, reconciliation, layouts, weights, items text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest
from etl_helpers import KEY, run, write
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys.etl import pipeline as P
from recsys.etl import reasons as R
from recsys.etl.pseudonymize import pseudonym
from recsys.etl.rules import NUMERIC_ID, normalize_id
from recsys.etl.sources import WITHHELD

MOVIES = 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"Heat, The (1995)",Action|Crime\n' \
         "3,Untitled,(no genres listed)\n,No Id (1999),Drama\n"
TAGS = "userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,Pixar,1\n3,1,fun,1\n1,2,heist,1\n"
BAD_TAGS = "7,abc,odd,1\n7,2,,1\n7,,orphan,1\n7,99,unknown item,1\n7,2,x,1,extra\n"
DAY = 964982703  # 2000-07-30


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def crafted_movielens(root: Path) -> Path:
    lines = [
        "userId,movieId,rating,timestamp",
        f"1,1,4.0,{DAY}", f"1,2,2.0,{DAY + 1}",             # accepted (weights 1 and 0)
        f"1,1,4.0,{DAY}", f"1,1,3.0,{DAY}",                 # exact duplicate, same user/item/ts
        "2,1,4.0",                                          # wrong field count
        f",1,4.0,{DAY}",                                    # null id
        f"abc,1,4.0,{DAY}",                                 # invalid id
        "3,1,4.0,yesterday",                                # unparsable timestamp
        "3,2,4.0,100",                                      # before min timestamp (1970)
        "3,1,4.0,1893456000",                               # after the run date (2030)
        f"3,2,x,{DAY}",                                     # unparsable value
        f"3,2,7.0,{DAY}",                                   # out of scale
        f"4,99,4.0,{DAY}",                                  # item not in catalog
        f"5,1,4.0,{DAY}",                                   # single interaction: below k-core
        f"6,1,4.0,{'0' * 30}{DAY}",                         # over-long field
        *[f"9,{i},4.0,{DAY + i}" for i in (1, 2, 3)] + [f"9,1,5.0,{DAY + 7}"],  # 4 events in a day: bot
        f"8,1,3.5,{DAY}", f"8,2,5.0,{DAY + 10}",
    ]
    data = ("\n".join(lines) + "\n").encode() + b"7,1,4.0,9649\xff82703\n"  # undecodable bytes
    write(root / "ratings.csv", data)
    write(root / "movies.csv", MOVIES)
    write(root / "tags.csv", TAGS + BAD_TAGS)
    return root


CRAFTED_OVERRIDES = ("etl.bot_max_events_per_day=3", "etl.max_field_length=20",
                     "etl.kcore.min_user_interactions=2")


def test_every_quarantine_reason_and_reconciliation(spark: SparkSession, tmp_path: Path) -> None:
    src = crafted_movielens(tmp_path / "in")
    row, store = run(spark, tmp_path / "lh", src, overrides=CRAFTED_OVERRIDES)
    expected = {R.FIELD_COUNT: 1, R.NULL_ID: 1, R.INVALID_ID: 1, R.BAD_TIMESTAMP: 1, R.TS_TOO_OLD: 1,
                R.TS_FUTURE: 1, R.BAD_VALUE: 1, R.VALUE_OUT_OF_RANGE: 1, R.UNKNOWN_ITEM: 1, R.BELOW_K_CORE: 1,
                R.FIELD_TOO_LONG: 1, R.BOT_USER: 4, R.UNDECODABLE: 1}
    assert row["quarantine_by_reason"] == expected
    assert row["duplicates_removed"] == 2
    assert row["accepted"] == 4  # users 1 and 8, two each
    assert row["input_rows"] == 4 + sum(expected.values()) + 2
    assert row["invariant_ok"] is True
    q = store.read("quarantine")
    assert q.where("entity = 'interactions'").count() == sum(expected.values())
    items_q = q.where("entity = 'items'").collect()
    assert [(r.reason, r.raw_record) for r in items_q] == [(R.NULL_ID, ",No Id (1999),Drama")]
    # every bad tag row is quarantined, its user field pseudonymized
    tags_q = sorted((r.reason, r.raw_record) for r in q.where("entity = 'tags'").collect())
    seven = pseudonym(KEY.encode(), "7")
    assert tags_q == sorted([
        (R.INVALID_ID, f"{seven},abc,odd,1"), (R.BAD_VALUE, f"{seven},2,,1"), (R.NULL_ID, f"{seven},,orphan,1"),
        (R.UNKNOWN_ITEM, f"{seven},99,unknown item,1"), (R.MALFORMED, WITHHELD)])  # extra field: withheld
    short = q.where(f"reason = '{R.FIELD_COUNT}'").first()  # "2,1,4.0": where its user field is is unknown
    assert short is not None and short.raw_record.startswith("<record withheld: 3 fields where 4 were expected")
    # raw user ids in quarantined records are replaced by their pseudonym
    bad_ts = q.where(f"reason = '{R.BAD_TIMESTAMP}'").first()
    assert bad_ts is not None and bad_ts.raw_record == f"{pseudonym(KEY.encode(), '3')},1,4.0,yesterday"
    assert all(r.source_file.endswith("ratings.csv") for r in q.where("entity = 'interactions'").collect())
    inter = {(r.item_id, r.rating, r.weight) for r in store.read("interactions").collect()}
    # of the same user/item/ts, the copy with the smallest 64-bit hash of its raw fields is kept
    hashes = spark.createDataFrame([(r, f"1,1,{r},{DAY}".split(",")) for r in ("4.0", "3.0")],
                                   "rating string, parts array<string>").select(
        "rating", F.xxhash64("parts").alias("tie")).orderBy("tie").collect()
    kept = float(hashes[0].rating)
    assert inter == {("1", kept, 1.0 if kept >= 3.5 else 0.0), ("2", 2.0, 0.0), ("1", 3.5, 1.0),
                     ("2", 5.0, 1.0)}
    runs = store.read("etl_runs").collect()
    assert len(runs) == 1 and runs[0].invariant_ok
    # items: title/year split, genres, most frequent tags, rendered text, dense indexes
    items = {r.item_id: r for r in store.read("items").collect()}
    toy = items["1"]
    assert (toy.title, toy.year, toy.categories, toy.tags) == ("Toy Story", 1995, ["Adventure", "Animation"],
                                                               ["pixar", "fun"])
    assert toy.text == "Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun."
    assert items["2"].title == "Heat, The"
    assert items["3"].text == "Untitled."
    idx = sorted(r.item_idx for r in items.values())
    assert idx == list(range(len(idx)))
    # one file per event_period (rows of a period are gathered before the partitioned write)
    periods = [p["event_period"] for p in store.snapshot("interactions").partition_values]
    assert len(periods) == len(set(periods))


def test_write_layout_sizing() -> None:
    assert P.period_count(dt.datetime(2000, 11, 30), dt.datetime(2001, 2, 1), "month") == 4
    assert P.period_count(dt.datetime(2000, 11, 30), dt.datetime(2001, 2, 1), "year") == 2
    assert P.period_count(dt.datetime(2000, 11, 30, 23), dt.datetime(2000, 12, 1, 1), "day") == 2
    assert P.salt_buckets(10, 5, 1000) == 1 and P.salt_buckets(0, 1, 1000) == 1
    assert P.salt_buckets(10_000, 2, 1000) == 5 and P.salt_buckets(10**9, 1, 1, limit=64) == 64
    assert P.task_count(0, 8, 2) == 2 and P.task_count(100 * 2**20, 8, 2) == 13


ML1M_MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Amélie (2001)::Comedy|Romance\n"
ML100K_ITEM = ("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
               "2|Amélie (2001)|01-Jan-2001||http://y|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0|0|0|0\n")


def _layout_files(root: Path, layout: str) -> Path:
    if layout == "ml-1m":
        write(root / "ratings.dat", f"1::1::5::{DAY}\n1::2::3::{DAY + 5}\n2::2::4::{DAY}\n2::2\n")
        write(root / "movies.dat", ML1M_MOVIES, "latin-1")
        write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    elif layout == "ml-100k":
        write(root / "u.data", f"1\t1\t5\t{DAY}\n1\t2\t3\t{DAY + 5}\n2\t2\t4\t{DAY}\n2\t2\n")
        write(root / "u.item", ML100K_ITEM, "latin-1")
        write(root / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    else:
        write(root / "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,5.0,{DAY}\n1,2,3.0,{DAY + 5}\n"
                                    f"2,2,4.0,{DAY}\n2,2\n")
        write(root / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Animation\n2,Amélie (2001),Comedy\n")
        write(root / "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n")
    return root


@pytest.mark.parametrize("layout", ["ml-latest", "ml-1m", "ml-100k"])
def test_movielens_layouts(spark: SparkSession, tmp_path: Path, layout: str) -> None:
    row, store = run(spark, tmp_path / "lh", _layout_files(tmp_path / layout, layout))
    assert (row["accepted"], row["quarantined"], row["invariant_ok"]) == (3, 1, True)
    assert row["quarantine_by_reason"] == {R.FIELD_COUNT: 1}
    items = {r.item_id: r for r in store.read("items").collect()}
    assert items["2"].title == "Amélie" and items["2"].year == 2001
    assert "Comedy" in items["2"].categories
    users = store.read("users").collect()
    assert len(users) == 2 and all(u.num_interactions in (1, 2) for u in users)
    if layout != "ml-latest":
        genders = sorted(u.attributes["gender"] for u in users)
        assert genders == ["F", "M"]
        assert all("zip" not in u.attributes for u in users)


def test_user_map_joined_before_or_after_the_layout_shuffle(spark: SparkSession, tmp_path: Path) -> None:
    """Small user maps are broadcast after the write layout, big ones joined before it: same table."""
    src = crafted_movielens(tmp_path / "in")
    tables = []
    for limit in (200_000, 0):
        row, store = run(spark, tmp_path / f"lh{limit}", src,
                         overrides=(*CRAFTED_OVERRIDES, f"etl.broadcast_user_map_max_users={limit}"))
        assert row["invariant_ok"] is True
        tables.append(sorted(tuple(r) for r in store.read("interactions").drop("run_id").collect()))
    assert tables[0] == tables[1] and len(tables[0]) == 4


def test_bot_candidates_checked_per_day_without_k_core(spark: SparkSession, tmp_path: Path) -> None:
    """Users with more events in all than the daily ceiling are checked day by day: only the one with too many
    on one day is a bot. The interactions' per-row-unique columns are written without dictionary encoding."""
    day = 86_400
    lines = ["userId,movieId,rating,timestamp",
             *[f"9,{i},4.0,{DAY + i}" for i in (1, 2, 3, 4)],          # 4 events in a day: bot
             *[f"8,{i},4.0,{DAY + i * day}" for i in (1, 2, 3, 4)],    # 4 events on 4 days: a candidate only
             f"7,1,4.0,{DAY}"]
    src = tmp_path / "in"
    write(src / "ratings.csv", "\n".join(lines) + "\n")
    write(src / "movies.csv", MOVIES.replace("3,Untitled", "4,Four (1999),Drama\n3,Untitled"))
    row, store = run(spark, tmp_path / "lh", src, overrides=("etl.bot_max_events_per_day=3",))
    assert row["invariant_ok"] is True
    assert row["quarantine_by_reason"] == {R.BOT_USER: 4}
    assert (row["accepted"], row["users"]) == (5, 2)
    users = {r[0] for r in store.read("interactions").select("user_id").distinct().collect()}
    assert users == {pseudonym(KEY.encode(), "8"), pseudonym(KEY.encode(), "7")}
    quarantined = store.read("quarantine").where(F.col("reason") == R.BOT_USER).select("raw_record").collect()
    bot = pseudonym(KEY.encode(), "9")
    assert sorted(r[0] for r in quarantined) == [f"{bot},{i},4.0,{DAY + i}" for i in (1, 2, 3, 4)]

    encodings: dict[str, set[str]] = {}
    for uri in store.snapshot("interactions").files:
        meta = pq.ParquetFile(urlparse(uri).path).metadata.row_group(0)
        for i in range(meta.num_columns):
            encodings.setdefault(meta.column(i).path_in_schema, set()).update(meta.column(i).encodings)
    assert all("DICTIONARY" not in e for c in ("user_id", "user_idx", "ts") for e in encodings[c])
    assert any("DICTIONARY" in e for e in encodings["item_id"])


def test_numeric_ids_lose_leading_zeros(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("007",), ("0",), ("000",), ("70",), ("",), (None,)], "id string")
    got = [r[0] for r in frame.select(normalize_id(F.col("id"), NUMERIC_ID)).collect()]
    assert got == ["7", "0", "0", "70", "", None]
    assert [r[0] for r in frame.select(normalize_id(F.col("id"), "^.+$")).collect()][:2] == ["007", "0"]


@pytest.mark.parametrize("grain", ["year", "month", "day"])
def test_period_key_has_one_value_per_event_period(spark: SparkSession, grain: str) -> None:
    stamps = [dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 31, 23, 59), dt.datetime(2000, 2, 1),
              dt.datetime(2000, 12, 31, 12), dt.datetime(2001, 1, 1), dt.datetime(2001, 2, 1, 0, 0, 1)]
    frame = spark.createDataFrame([(t,) for t in stamps], "ts timestamp")
    pairs = frame.select(P.period_key(F.col("ts"), grain).alias("k"), P.event_period(F.col("ts"), grain).alias("p"))
    got = {(r.k, r.p) for r in pairs.collect()}
    assert len({k for k, _ in got}) == len({p for _, p in got}) == len(got)
    with pytest.raises(ValueError, match="time_grain"):
        P.period_key(F.col("ts"), "week")


def test_full_run_that_accepts_nothing_does_not_empty_the_tables(spark: SparkSession, tmp_path: Path) -> None:
    """A full run replaces the tables: one whose every row is rejected (a wrong input or setting) would leave
    them empty, so it is refused before any write."""
    good = write(tmp_path / "good" / "ratings.csv", f"userId,movieId,rating,timestamp\n1,10,4.0,{DAY}\n").parent
    _, store = run(spark, tmp_path / "lh", good)
    bad = write(tmp_path / "bad" / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,yesterday\n").parent
    with pytest.raises(ValueError, match=rf"accepted none of its 1 input rows \(rejected: {{'{R.BAD_TIMESTAMP}': 1}}"):
        run(spark, tmp_path / "lh", bad)
    tables = store.list_tables()
    assert len(tables) == 7 and all(store.version(name) == 0 for name in tables)
    assert store.read("interactions").count() == 1
