"""The items dimension across batches: catalogs, tag files and their quarantine rows (MovieLens layout)."""

from __future__ import annotations

from pathlib import Path

import pytest
from etl_helpers import KEY, run, write
from pyspark.sql import SparkSession

from recsys.etl import reasons as R
from recsys.etl.pseudonymize import pseudonym
from recsys.lakehouse import TableStore

RATINGS = "userId,movieId,rating,timestamp\n"
MOVIES = "movieId,title,genres\n"
TAGS = "userId,movieId,tag,timestamp\n"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def _tags(store: TableStore) -> dict[str, list[str]]:
    return {r.item_id: list(r.tags) for r in store.read("items").collect()}


def test_tags_of_items_an_earlier_batch_catalogued(spark: SparkSession, tmp_path: Path) -> None:
    """Batch 2 catalogues movie 3 only and tags movie 2 (catalogued by batch 1): the tag is used, not
    quarantined as item_not_in_catalog."""
    write(tmp_path / "b1" / "ratings.csv", RATINGS + "1,1,4.0,964982703\n1,2,4.0,964982704\n")
    write(tmp_path / "b1" / "movies.csv", MOVIES + "1,Heat (1995),Crime\n2,Up (2009),Animation\n")
    write(tmp_path / "b2" / "ratings.csv", RATINGS + "2,3,4.0,964982800\n")
    write(tmp_path / "b2" / "movies.csv", MOVIES + "3,Alien (1979),Horror\n")
    write(tmp_path / "b2" / "tags.csv", TAGS + "1,2,Balloons,964982900\n")
    run(spark, tmp_path / "lh", tmp_path / "b1")
    row, store = run(spark, tmp_path / "lh", tmp_path / "b2", mode="incremental")
    assert row["invariant_ok"] and store.read("quarantine").where("entity = 'tags'").count() == 0
    assert _tags(store) == {"1": [], "2": ["balloons"], "3": []}
    up = next(i for i in store.read("items").collect() if i.item_id == "2")
    assert (up.title, up.year, up.text) == ("Up", 2009, "Up (2009). Genres: Animation. Tags: balloons.")


def test_a_tag_file_without_a_catalog_file_is_read(spark: SparkSession, tmp_path: Path) -> None:
    """tags.csv alone: its rows tag the items the lakehouse knows, or reach quarantine (they were ignored
    without a trace)."""
    write(tmp_path / "b1" / "ratings.csv", RATINGS + "1,1,4.0,964982703\n")
    write(tmp_path / "b1" / "movies.csv", MOVIES + "1,Toy Story (1995),Animation\n")
    write(tmp_path / "b2" / "ratings.csv", RATINGS + "2,1,4.0,964982800\n")
    write(tmp_path / "b2" / "tags.csv", TAGS + "2,1,toys,964982900\n2,9,nowhere,964982901\n")
    run(spark, tmp_path / "lh", tmp_path / "b1")
    row, store = run(spark, tmp_path / "lh", tmp_path / "b2", mode="incremental")
    assert row["invariant_ok"] and _tags(store) == {"1": ["toys"]}
    rejected = [(r.reason, r.raw_record) for r in store.read("quarantine").where("entity = 'tags'").collect()]
    assert rejected == [(R.UNKNOWN_ITEM, f"{pseudonym(KEY.encode(), '2')},9,nowhere,964982901")]


def test_a_catalog_delivered_again_without_tags_keeps_them(spark: SparkSession, tmp_path: Path) -> None:
    """A batch that re-sends movies.csv (a new title) without tags.csv keeps the tags of the earlier batch;
    a batch that tags the movie replaces them."""
    write(tmp_path / "b1" / "ratings.csv", RATINGS + "1,1,4.0,964982703\n")
    write(tmp_path / "b1" / "movies.csv", MOVIES + "1,Toy Story (1995),Animation\n")
    write(tmp_path / "b1" / "tags.csv", TAGS + "1,1,pixar,964982703\n")
    write(tmp_path / "b2" / "ratings.csv", RATINGS + "2,1,4.0,964982800\n")
    write(tmp_path / "b2" / "movies.csv", MOVIES + "1,Toy Story (1995),Animation|Children\n")
    write(tmp_path / "b3" / "ratings.csv", RATINGS + "3,1,4.0,964982900\n")
    write(tmp_path / "b3" / "tags.csv", TAGS + "3,1,woody,964982901\n3,1,Woody,964982902\n")
    run(spark, tmp_path / "lh", tmp_path / "b1")
    _, store = run(spark, tmp_path / "lh", tmp_path / "b2", mode="incremental")
    item = store.read("items").first()
    assert item is not None and list(item.categories) == ["Animation", "Children"] and list(item.tags) == ["pixar"]
    assert item.text == "Toy Story (1995). Genres: Animation, Children. Tags: pixar."
    _, store = run(spark, tmp_path / "lh", tmp_path / "b3", mode="incremental")
    assert _tags(store) == {"1": ["woody"]}


def test_tag_quarantine_pseudonymizes_the_normalized_user_id(spark: SparkSession, tmp_path: Path) -> None:
    """User "007" of a rejected tag row is user 7 of the ratings: one pseudonym for both."""
    write(tmp_path / "in" / "ratings.csv", RATINGS + "7,1,4.0,964982703\n")
    write(tmp_path / "in" / "movies.csv", MOVIES + "1,Heat (1995),Crime\n")
    write(tmp_path / "in" / "tags.csv", TAGS + "007,1,,964982703\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in")
    assert row["accepted"] == 1
    (rejected,) = store.read("quarantine").where("entity = 'tags'").collect()
    user = store.read("user_index").first()
    assert user is not None and rejected.raw_record.split(",")[0] == user.user_id == pseudonym(KEY.encode(), "7")


def test_rerun_judges_tags_as_its_first_attempt(spark: SparkSession, tmp_path: Path) -> None:
    """Ratings and a tag file, no catalog: the tag names an item only this run indexes, so it is quarantined, and
    a re-run of the same run (which finds the item in the index its first attempt wrote) quarantines it again."""
    write(tmp_path / "in" / "ratings.csv", RATINGS + "1,1,4.0,964982703\n")
    write(tmp_path / "in" / "tags.csv", TAGS + "1,1,funny,964982703\n")
    outcomes = []
    for _ in range(2):
        row, store = run(spark, tmp_path / "lh", tmp_path / "in")
        rejected = sorted((r.reason, r.raw_record) for r in store.read("quarantine").collect())
        outcomes.append((row["run_id"], rejected, _tags(store)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == [(R.UNKNOWN_ITEM, f"{pseudonym(KEY.encode(), '1')},1,funny,964982703")]
