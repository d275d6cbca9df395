"""Incremental ETL runs judge a batch together with what earlier runs loaded: k-core and bot ceiling count the
table's events, and events loaded before are duplicates before any rule counts them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from etl_helpers import KEY, run, write
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys.etl import history as H
from recsys.etl import pipeline as P
from recsys.etl import reasons as R
from recsys.jobs import etl as etl_job
from recsys.lakehouse import ConcurrentWriteError, TableStore

EVENTS = ("etl.missing_item_policy=keep", "etl.events.items=none")
HEADER = "user_id,item_id,timestamp,event_type\n"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def _batches(root: Path, *batches: str) -> list[Path]:
    return [write(root / f"b{i}" / "events.csv", HEADER + text).parent for i, text in enumerate(batches, 1)]


def _first_then_incremental(spark: SparkSession, tmp_path: Path, batches: list[Path],
                            conf: tuple[str, ...]) -> tuple[dict[str, Any], TableStore]:
    """Batch 1 in full mode (all 4 events accepted), then batch 2 incremental: its etl_runs row and the store."""
    first, store = run(spark, tmp_path / "lh", batches[0], source="events", overrides=conf)
    assert (first["accepted"], first["quarantined"]) == (4, 0)
    second, _ = run(spark, tmp_path / "lh", batches[1], source="events", mode="incremental", overrides=conf)
    assert second["invariant_ok"]
    return second, store


def _counts(row: dict[str, Any]) -> tuple[int, int, int, int]:
    return row["input_rows"], row["accepted"], row["quarantined"], row["duplicates_removed"]


def _quarantined(store: TableStore, run_id: str) -> list[tuple[str, str]]:
    rows = store.read("quarantine").where(f"run_id = '{run_id}'").collect()
    return sorted((r.reason, r.raw_record.split(",")[1]) for r in rows)


def test_k_core_counts_the_events_earlier_batches_loaded(spark: SparkSession, tmp_path: Path) -> None:
    """Alone, batch 2 would reject alice's new event (one event of hers, one of item i2 in the batch); with the
    four events batch 1 loaded, only carol (one event, of an item nobody else has) is below the 2-core."""
    batches = _batches(
        tmp_path,
        "alice,i1,2024-01-02T10:00:00,click\nalice,i2,2024-01-02T11:00:00,click\n"
        "bob,i1,2024-01-03T10:00:00,click\nbob,i2,2024-01-03T11:00:00,click\n",
        "alice,i2,2024-02-01T10:00:00,click\nalice,i1,2024-01-02T10:00:00,click\n"
        "carol,i3,2024-02-02T10:00:00,click\n")
    conf = (*EVENTS, "etl.kcore.min_user_interactions=2", "etl.kcore.min_item_interactions=2")
    second, store = _first_then_incremental(spark, tmp_path, batches, conf)
    assert _counts(second) == (3, 1, 1, 1) and second["quarantine_by_reason"] == {R.BELOW_K_CORE: 1}
    assert _quarantined(store, str(second["run_id"])) == [(R.BELOW_K_CORE, "i3")]
    assert store.read("interactions").count() == 5


def test_bot_ceiling_counts_the_day_earlier_batches_loaded(spark: SparkSession, tmp_path: Path) -> None:
    """With at most 2 events a day: dave's third event on a day batch 1 already holds two of makes him a bot;
    erin's two events of that day delivered again are duplicates, not two more events (not a bot)."""
    day = ("dave,i1,2024-01-02T10:00:00,click\ndave,i2,2024-01-02T11:00:00,click\n"
           "erin,i1,2024-01-02T10:00:00,click\nerin,i2,2024-01-02T11:00:00,click\n")
    batches = _batches(
        tmp_path, day,
        "dave,i3,2024-01-02T12:00:00,click\n"
        "erin,i1,2024-01-02T10:00:00,click\nerin,i2,2024-01-02T11:00:00,click\n"
        "erin,i3,2024-01-03T10:00:00,click\n")
    conf = (*EVENTS, "etl.bot_max_events_per_day=2")
    second, store = _first_then_incremental(spark, tmp_path, batches, conf)
    assert _counts(second) == (4, 1, 1, 2) and second["quarantine_by_reason"] == {R.BOT_USER: 1}
    assert _quarantined(store, str(second["run_id"])) == [(R.BOT_USER, "i3")]
    new = store.read("interactions").where(f"run_id = '{second['run_id']}'").collect()
    assert [(r.item_id, str(r.event_date)) for r in new] == [("i3", "2024-01-03")]

    # A re-run of the incremental batch judges it the same way and adds nothing.
    again, _ = run(spark, tmp_path / "lh", batches[1], source="events", mode="incremental", overrides=conf)
    keys = ("input_rows", "accepted", "quarantined", "duplicates_removed", "quarantine_by_reason", "invariant_ok")
    assert {k: again[k] for k in keys} == {k: second[k] for k in keys}
    assert store.read("interactions").count() == 5


@pytest.mark.parametrize("grain", ["year", "month", "day"])
def test_on_days_keeps_whole_days_of_the_batch(spark: SparkSession, grain: str) -> None:
    """The batch's bounds are whole days: an earlier event at 00:00 of its first day, or 23:59 of its last,
    counts."""
    utc = dt.timezone.utc  # aware datetimes: Spark converts them exactly, whatever the host's zone
    events = spark.createDataFrame(
        [("u", None, dt.datetime(2024, 1, 1, 10, tzinfo=utc)), ("u", None, dt.datetime(2024, 1, 31, 9, tzinfo=utc)),
         ("u", R.NULL_ID, dt.datetime(2022, 1, 1, tzinfo=utc))], "user_raw string, reason string, ts timestamp")
    days = H.batch_days(P.user_summary(events.withColumn("copies", F.lit(1))), grain).first()
    assert days is not None and (days["first"], days["last"]) == (dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    stamps = [dt.datetime(2023, 12, 31, 23, 59, tzinfo=utc), dt.datetime(2024, 1, 1, tzinfo=utc),
              dt.datetime(2024, 1, 31, 23, 59, tzinfo=utc), dt.datetime(2024, 2, 1, tzinfo=utc)]
    table = spark.createDataFrame([(t,) for t in stamps], "ts timestamp").select(
        F.to_date("ts").alias("event_date"), P.event_period(F.col("ts"), grain).alias("event_period"))
    kept = H.on_days(table, days)
    assert sorted(r.event_date for r in kept.collect()) == [dt.date(2024, 1, 1), dt.date(2024, 1, 31)]


def test_incremental_run_with_another_time_grain_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    b1, b2 = _batches(tmp_path, "alice,i1,2024-01-02T10:00:00,click\n", "alice,i2,2024-01-03T10:00:00,click\n")
    _, store = run(spark, tmp_path / "lh", b1, source="events", overrides=EVENTS)
    before = store.version("interactions")
    with pytest.raises(ValueError, match=r"etl\.time_grain is 'day'"):
        run(spark, tmp_path / "lh", b2, source="events", mode="incremental",
            overrides=(*EVENTS, "etl.time_grain=day"))
    assert store.version("interactions") == before
    H.require_grain([{"event_period": "2024-01"}, {"event_period": None}], "month")  # the table's grain: fine


def test_rerun_after_a_failed_attempt_and_another_run_keeps_the_tables_consistent(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run N appends, then fails; run N+1 commits; N is re-run. The events N's first attempt appended stay
    accepted (kept, not appended twice); its other events are judged with N+1's rows: amy's event, below the
    2-core at first, now has two more of hers in the table."""
    b1, b2, b3 = _batches(
        tmp_path, "zed,i1,2024-01-02T10:00:00,click\nzed,i2,2024-01-02T11:00:00,click\n",
        "amy,i1,2024-01-03T10:00:00,click\nzed,i3,2024-01-03T11:00:00,click\n",
        "amy,i2,2024-01-04T10:00:00,click\namy,i3,2024-01-04T11:00:00,click\n")
    conf = (*EVENTS, "etl.kcore.min_user_interactions=2")
    run(spark, tmp_path / "lh", b1, source="events", overrides=conf)

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("quarantine write failed")

    with monkeypatch.context() as patch:
        patch.setattr(P, "interaction_quarantine", failing)
        with pytest.raises(RuntimeError, match="quarantine write failed"):
            run(spark, tmp_path / "lh", b2, source="events", mode="incremental", overrides=conf)
    _, store = run(spark, tmp_path / "lh", b3, source="events", mode="incremental", overrides=conf)
    assert store.read("interactions").count() == 5  # zed's i3 from N's failed attempt, amy's two from N+1
    again, _ = run(spark, tmp_path / "lh", b2, source="events", mode="incremental", overrides=conf)
    assert _counts(again) == (2, 2, 0, 0) and again["invariant_ok"]
    table = store.read("interactions")
    assert table.count() == 6 and table.select("user_id", "item_id", "ts").distinct().count() == 6
    assert store.read("quarantine").where(f"run_id = '{again['run_id']}'").count() == 0


def test_a_run_that_overlaps_another_is_refused_and_its_rerun_sees_the_other(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run B starts and commits while run A is between its reads and its writes (injected through a function A
    calls in between). A would append an event B loaded and overwrite the dimensions B extended: its first
    write is refused instead, nothing of A is committed, and A re-run afterwards judges its batch with B's rows."""
    b1, b_a, b_b = _batches(
        tmp_path, "zed,i1,2024-01-02T10:00:00,click\n",
        "carol,i1,2024-01-05T10:00:00,click\n",
        "carol,i1,2024-01-05T10:00:00,click\ncarol,i9,2024-01-05T11:00:00,click\n")
    _, store = run(spark, tmp_path / "lh", b1, source="events", overrides=EVENTS)
    real = etl_job.bot_candidates
    overlapped: list[dict[str, Any]] = []

    def with_run_b(*args: Any, **kwargs: Any) -> Any:
        if not overlapped:
            overlapped.append({})  # B calls this too: only A starts B
            overlapped[0] = run(spark, tmp_path / "lh", b_b, source="events", mode="incremental",
                                overrides=EVENTS)[0]
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(etl_job, "bot_candidates", with_run_b)
        with pytest.raises(ConcurrentWriteError, match="another job committed"):
            run(spark, tmp_path / "lh", b_a, source="events", mode="incremental", overrides=EVENTS)
    assert overlapped and overlapped[0]["accepted"] == 2
    assert [r.run_id for r in store.read("etl_runs").collect()].count(overlapped[0]["run_id"]) == 1
    assert store.read("interactions").count() == 3
    again, _ = run(spark, tmp_path / "lh", b_a, source="events", mode="incremental", overrides=EVENTS)
    assert _counts(again) == (1, 0, 0, 1) and again["invariant_ok"]  # B loaded carol's i1 event
    table = store.read("interactions")
    assert table.count() == 3 and table.select("user_id", "item_id", "ts").distinct().count() == 3
    assert {r.item_id for r in store.read("items").collect()} == {"i1", "i9"}
