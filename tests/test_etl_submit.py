"""The ETL job under spark-submit (local[2]), on the bundled sample: no data is collected to the driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from etl_helpers import KEY

from recsys.data import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


@pytest.mark.slow
@pytest.mark.skipif(not SPARK_SUBMIT.exists(), reason="spark-submit not installed beside the interpreter")
def test_etl_under_spark_submit_with_tiny_result_size(tmp_path: Path) -> None:
    assert (SAMPLE_DIR / "ratings.csv").stat().st_size > 1_000_000  # bigger than maxResultSize below
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "RECSYS_PSEUDONYM_KEY": KEY}
    cmd = [str(SPARK_SUBMIT), "--master", "local[2]", "--driver-memory", "1g",
           "--conf", "spark.driver.maxResultSize=1m", "--conf", "spark.sql.shuffle.partitions=2",
           "--conf", "spark.sql.session.timeZone=UTC", "--conf", "spark.ui.enabled=false",
           str(REPO_ROOT / "jobs" / "etl.py"), "--env", "test", "--source", "movielens",
           "--input", str(SAMPLE_DIR), "--lakehouse", str(tmp_path / "lh"), "--run-date", "2024-01-01",
           "--set", "etl.time_grain=year"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["invariant_ok"] is True
    assert summary["input_rows"] == 100836 and summary["accepted"] == 100836
    assert summary["users"] == 610 and summary["items"] == 9742
