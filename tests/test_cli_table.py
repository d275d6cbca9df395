"""`recsys table ...` maintenance commands and the top-level CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys.cli import main
from recsys.lakehouse import TableStore


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("table", "etl", "prepare", "train", "score", "evaluate", "run"):
        assert command in out
    assert main(["nope"]) == 2


def test_table_commands(spark: SparkSession, store: TableStore, lakehouse: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    frame = spark.range(30).select("id", (F.col("id") % 3).cast("string").alias("p"))
    store.write(frame, "events", partition_by=["p"])
    store.write(frame, "events", mode="overwrite", partition_by=["p"])
    common = ["--lakehouse", str(lakehouse), "--env", "test"]

    assert main(["table", "list", *common]) == 0
    out = capsys.readouterr().out
    assert "events" in out and " 30 " in out

    assert main(["table", "show", "events", "--version", "0", "--limit", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "version 0" in out and "partitioned by: p" in out

    assert main(["table", "history", "events", *common]) == 0
    out = capsys.readouterr().out
    assert "recsys overwrite events" in out and "recsys error events" in out

    assert main(["table", "vacuum", "events", "--retention-hours", "0", "--dry-run", *common]) == 0
    assert "would delete" in capsys.readouterr().out
    assert main(["table", "vacuum", "events", "--retention-hours", "0", *common]) == 2  # refused
    assert "allow-short-retention" in capsys.readouterr().err
    assert main(["table", "vacuum", "events", "--retention-hours", "0", "--allow-short-retention", *common]) == 0
    assert store.read("events").count() == 30

    assert main(["table", "optimize", "events", *common]) == 0
    assert store.read("events").count() == 30

    assert main(["table", "show", "missing", *common]) == 2
    assert "not found" in capsys.readouterr().err


def test_input_errors_are_one_line_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An input problem (here no MovieLens ratings file) exits 2 with its message, not a traceback."""
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", "unit-test-key")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("nothing here\n")
    assert main(["etl", "--input", str(tmp_path / "in"), "--lakehouse", str(tmp_path / "lh"), "--env", "test",
                 "--log-level", "WARNING"]) == 2
    err = capsys.readouterr().err
    assert "recsys etl: error: no MovieLens ratings file" in err and "Traceback" not in err
