"""The write path never brings the data to the driver: it succeeds under a 1 MiB driver result limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_large_write_under_tiny_driver_result_limit(tmp_path: Path) -> None:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    result = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--driver-memory", "1g",
         "--conf", "spark.driver.maxResultSize=1m", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.session.timeZone=UTC",
         str(REPO_ROOT / "tests/scripts/write_large_table.py"), str(tmp_path / "lakehouse")],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert "WRITE_OK" in result.stdout, result.stderr[-4000:]
    assert "COLLECT_BLOCKED" in result.stdout, "the limit did not bite: the test would not catch a collect"
