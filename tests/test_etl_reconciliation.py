"""ETL bookkeeping: run ids of batches, user-table rows, event-type case, a reconciliation that can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from etl_helpers import KEY, REPO_ROOT, run, write
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from test_etl_raw_ids import _no_raw_ids

from recsys.config import load_config
from recsys.etl import pipeline as P
from recsys.etl import reasons as R
from recsys.etl.items import validate_catalog
from recsys.etl.pseudonymize import pseudonym
from recsys.jobs import etl as etl_job

EVENTS = ("etl.missing_item_policy=keep", "etl.events.items=none")
HEADER = "user_id,item_id,timestamp,event_type\n"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)


def test_batches_dropped_into_one_folder_are_separate_runs(spark: SparkSession, tmp_path: Path) -> None:
    """A second batch landing next to the first on the same run date is another run: it must not replace the
    first batch's quarantine rows and etl_runs row (a run id from the input path alone did)."""
    landing = tmp_path / "landing"
    write(landing / "events-1.csv", HEADER + "alice-7731,i1,2024-01-02,click\nalice-7731,i1,2024-01-02,nope\n")
    first, store = run(spark, tmp_path / "lh", landing, source="events", mode="incremental", overrides=EVENTS)
    write(landing / "events-2.csv", HEADER + "bob-8842,i2,2024-01-03,click\nbob-8842,i2,yesterday,click\n")
    second, _ = run(spark, tmp_path / "lh", landing, source="events", mode="incremental", overrides=EVENTS)
    assert first["run_id"] != second["run_id"]
    # the second run reads both files: the first file's rows are cross-batch duplicates now
    assert (second["input_rows"], second["accepted"], second["duplicates_removed"]) == (4, 1, 1)
    assert second["invariant_ok"]
    quarantine = {(r.run_id, r.reason) for r in store.read("quarantine").collect()}
    assert (first["run_id"], R.UNKNOWN_EVENT) in quarantine
    assert (second["run_id"], R.BAD_TIMESTAMP) in quarantine
    assert store.read("etl_runs").count() == 2
    assert store.read("interactions").count() == 2
    write(landing / "notes.txt", "not an input of the run\n")  # files the run does not read play no part
    again, _ = run(spark, tmp_path / "lh", landing, source="events", mode="incremental", overrides=EVENTS)
    assert again["run_id"] == second["run_id"] and store.read("etl_runs").count() == 2
    assert (again["accepted"], again["duplicates_removed"], again["invariant_ok"]) == (1, 1, True)


def test_user_table_duplicates_and_users_without_events(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events.csv", HEADER + "alice-7731,i1,2024-01-02,click\n")
    write(tmp_path / "in" / "users.csv", "user_id,country\nalice-7731,FR\nalice-7731,DE\ncarol-9953,IT\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert row["invariant_ok"]
    users = store.read("quarantine").where(f"entity = '{R.ENTITY_USERS}'").collect()
    assert sorted(r.reason for r in users) == [R.DUPLICATE_ID, R.USER_WITHOUT_EVENTS]
    kept = store.read("users").collect()
    alice = pseudonym(KEY.encode(), "alice-7731")
    assert [(r.user_id, dict(r.attributes)) for r in kept] == [(alice, {"country": "DE"})]  # first by record
    assert {r.reason: r.raw_record for r in users}[R.DUPLICATE_ID] == f"{alice},FR"
    _no_raw_ids(tmp_path / "lh")


def test_event_weight_keys_match_any_case(spark: SparkSession, tmp_path: Path) -> None:
    write(tmp_path / "in" / "events.csv", HEADER + "alice-7731,i1,2024-01-02,VIEW\nbob-8842,i1,2024-01-02, View\n")
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events",
                     overrides=(*EVENTS, "etl.event_weights={View: 0.25}"))
    assert row["accepted"] == 2 and row["invariant_ok"]
    assert {(r.event_type, r.weight) for r in store.read("interactions").collect()} == {("view", 0.25)}
    with pytest.raises(ValueError, match="same event type"):
        load_config("test", conf_dir=REPO_ROOT / "conf", overrides=["etl.event_weights={view: 1, VIEW: 2}"])


def test_reconciliation_fails_when_a_table_loses_rows(spark: SparkSession, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts come from independent places (rows read, tables written), so a lost row shows."""
    write(tmp_path / "in" / "events.csv",
          HEADER + "alice-7731,i1,2024-01-02,click\nbob-8842,i2,yesterday,click\nbob-8842,i3,2024-01-02,nope\n")
    real = P.interaction_quarantine

    def losing_one(*args: object, **kwargs: object) -> DataFrame:
        return real(*args, **kwargs).where(f"reason != '{R.BAD_TIMESTAMP}'")  # type: ignore[arg-type]

    monkeypatch.setattr(P, "interaction_quarantine", losing_one)
    row, store = run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert row["invariant_ok"] is False
    assert (row["input_rows"], row["accepted"], row["quarantined"]) == (3, 1, 1)
    assert store.read("etl_runs").first().invariant_ok is False  # type: ignore[union-attr]


def test_incremental_reconciliation_fails_when_appended_rows_are_lost(spark: SparkSession, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Cross-batch duplicates are counted on their own, so a row lost from an incremental append is not taken
    for one."""
    write(tmp_path / "b1" / "events.csv", HEADER + "alice-7731,i1,2024-01-02,click\n")
    write(tmp_path / "b2" / "events.csv",
          HEADER + "alice-7731,i1,2024-01-02,click\nbob-8842,i2,2024-01-03,click\nbob-8842,i3,2024-01-03,click\n")
    run(spark, tmp_path / "lh", tmp_path / "b1", source="events", overrides=EVENTS)
    real = P.write_layout

    def losing_one(frame: DataFrame, *args: object, **kwargs: object) -> DataFrame:
        return real(frame.where("item_id != 'i3'"), *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(P, "write_layout", losing_one)
    row, _ = run(spark, tmp_path / "lh", tmp_path / "b2", source="events", mode="incremental", overrides=EVENTS)
    assert (row["input_rows"], row["accepted"], row["duplicates_removed"]) == (3, 1, 1)
    assert row["invariant_ok"] is False


def test_catalog_rows_with_a_known_id_are_duplicates(spark: SparkSession) -> None:
    """Catalog and user table share the rule: the first passing row per id (by file, then record) is kept."""
    rows = [("10", "A", "f2.csv", "10,A"), ("010", "B", "f1.csv", "010,B"), ("20", "C", "f1.csv", "20,C"),
            ("20", "C", "f1.csv", "20,C")]
    frame = spark.createDataFrame(
        rows, "item_raw string, title string, source_file string, raw_record string").select(
        "*", F.lit(None).cast("string").alias("description"), F.lit(None).cast("string").alias("parse_reason"))
    checked = validate_catalog(frame, "^[0-9]+$", 100)
    got = sorted((r.item_raw, r.title, r.reason or "") for r in checked.collect())
    assert got == [("10", "A", R.DUPLICATE_ID), ("10", "B", ""), ("20", "C", ""), ("20", "C", R.DUPLICATE_ID)]


def test_rows_read_counted_again_when_the_observed_count_disagrees(spark: SparkSession, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The observed rows-read metric is an accumulator: a retried task adds its rows twice. The job then counts
    the input again instead of reporting a loss."""
    write(tmp_path / "in" / "events.csv", HEADER + "alice-7731,i1,2024-01-02,click\nbob-8842,i2,2024-01-03,click\n")

    class RetriedObservation(Observation):
        @property
        def get(self) -> dict[str, Any]:
            return {name: value * 2 for name, value in super().get.items()}  # every task counted twice

    monkeypatch.setattr(etl_job, "Observation", RetriedObservation)
    row, _ = run(spark, tmp_path / "lh", tmp_path / "in", source="events", overrides=EVENTS)
    assert (row["input_rows"], row["accepted"], row["invariant_ok"]) == (2, 2, True)
