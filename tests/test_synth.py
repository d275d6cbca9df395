"""Synthetic data: deterministic for a seed, structured, and loadable by the ETL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from etl_helpers import KEY, run
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys.synth import SynthSpec, synth_interactions, synth_items, write_dataset


def test_deterministic_for_seed_and_partitioning(spark: SparkSession) -> None:
    a = synth_interactions(spark, SynthSpec(50, 40, 2000, seed=3, partitions=1)).collect()
    b = synth_interactions(spark, SynthSpec(50, 40, 2000, seed=3, partitions=3)).collect()
    c = synth_interactions(spark, SynthSpec(50, 40, 2000, seed=4, partitions=1)).collect()
    assert a == b and a != c
    rows = synth_interactions(spark, SynthSpec(50, 40, 2000, seed=3))
    stats = rows.agg(F.min("user"), F.max("user"), F.min("item"), F.max("item"), F.min("rating"),
                     F.max("rating")).first()
    assert stats is not None and stats[0] >= 0 and stats[1] < 50 and stats[2] >= 0 and stats[3] < 40
    assert stats[4] >= 0.5 and stats[5] <= 5.0
    # Zipf-like popularity: the 10% most popular items get far more than 10% of the interactions.
    counts = sorted((r["count"] for r in rows.groupBy("item").count().collect()), reverse=True)
    assert sum(counts[:4]) > 0.25 * 2000
    # Latent tastes: ratings of a user's favourite topic are higher.
    assert synth_items(spark, SynthSpec(50, 40, 10)).count() == 40


def test_synth_then_etl(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", KEY)
    write_dataset(spark, SynthSpec(30, 20, 500, seed=1), str(tmp_path / "ml"), "movielens")
    row, _ = run(spark, tmp_path / "lh", tmp_path / "ml")
    assert row["invariant_ok"] and row["input_rows"] == 500 and row["quarantined"] == 0
    assert row["accepted"] + row["duplicates_removed"] == 500
    write_dataset(spark, SynthSpec(30, 20, 300, seed=1), str(tmp_path / "ev"), "events")
    events = spark.read.option("header", True).csv(str(tmp_path / "ev" / "events.csv"))
    assert events.columns == ["user_id", "item_id", "timestamp", "event_type"] and events.count() == 300
    # the ETL reads the folders Spark wrote (events.csv/part-*.csv), headers checked file by file
    row, store = run(spark, tmp_path / "lh-ev", tmp_path / "ev", source="events")
    assert row["invariant_ok"] and row["input_rows"] == 300 and row["quarantined"] == 0
    assert row["accepted"] + row["duplicates_removed"] == 300
    items = store.read("items").collect()
    assert len(items) <= 20 and all(i.year is not None and f"({i.year})" in i.text for i in items)


def test_same_data_for_a_seed_whatever_the_driver_zone(spark: SparkSession, new_york: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Timestamps count from 2015-01-01 UTC, not from midnight in the driver's zone (5 hours later here)."""
    spec = SynthSpec(5, 5, 50, seed=2, partitions=1)
    in_new_york = synth_interactions(spark, spec).collect()
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert synth_interactions(spark, spec).collect() == in_new_york
    assert min(r.ts for r in in_new_york) >= 1420070400
