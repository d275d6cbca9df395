"""`recsys run` end to end: synthetic MovieLens-layout data, the test config's tiny model, every stage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from recsys.jobs.run import main as run_main
from recsys.lakehouse import TableStore
from recsys.schemas import Tables

RUN_DATE = dt.date(2024, 3, 1)


@pytest.mark.slow
def test_recsys_run_end_to_end(spark: SparkSession, store: TableStore, lakehouse: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.jobs.synth import main as synth_main

    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", "e2e-test-key-0123456789abcdef")

    raw = tmp_path / "raw"
    common = ["--env", "test", "--lakehouse", str(lakehouse), "--log-level", "WARNING"]
    assert synth_main(["--users", "60", "--items", "120", "--interactions", "3000", "--output", str(raw),
                       "--format", "movielens", *common]) == 0
    code = run_main(["--source", "movielens", "--input", str(raw), "--run-date", RUN_DATE.isoformat(),
                     "--run-id", "e2e", *common])
    out = capsys.readouterr()
    assert code == 0, out.err[-4000:]
    for stage in ("etl", "prepare", "train", "embed", "score", "evaluate", "total"):
        assert stage in out.out
    assert "Example recommendations" in out.out and "similar to" in out.out

    recs = store.read(Tables.RECOMMENDATIONS).where(f"run_date = '{RUN_DATE}'")
    assert recs.count() > 0
    metrics: pd.DataFrame = store.read(Tables.METRICS).where("run_id = 'e2e' and split = 'test'").toPandas()
    assert {"ours", "most_popular", "als", "item_knn"} <= set(metrics["model"])
    assert (lakehouse / "reports" / "e2e" / "report.html").exists()

    # A serving run on the same lakehouse: nothing held out, so every user's latest interaction is history
    # (and excluded from the recommendations as seen), training runs without validation, evaluate is skipped.
    serving_date = RUN_DATE + dt.timedelta(days=1)
    code = run_main(["--from-stage", "prepare", "--run-date", serving_date.isoformat(), "--run-id", "serve",
                     "--set", "prepare.split.strategy=none", *common])
    out = capsys.readouterr()
    assert code == 0, out.err[-4000:]
    assert "stage evaluate skipped" in out.err
    assert store.read(Tables.TEST_TRUTH).count() == 0
    served = store.read(Tables.RECOMMENDATIONS).where(f"run_date = '{serving_date}'")
    assert served.select("user_idx").distinct().count() == store.read(Tables.USER_HISTORIES).count()
    latest = store.read(Tables.INTERACTIONS).groupBy("user_idx").agg({"item_idx": "collect_set"})
    clashes = served.join(latest, "user_idx").where("array_contains(`collect_set(item_idx)`, item_idx)")
    assert clashes.count() == 0  # nothing the user interacted with, the formerly held-out items included
    from recsys.config import ConfigError
    from recsys.jobs.evaluate import main as evaluate_main

    with pytest.raises(ConfigError, match="nothing held out"):
        evaluate_main(common)
