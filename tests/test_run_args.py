"""`recsys run` forwards the ETL source from config unless given, and needs an input for non-MovieLens sources."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from recsys.jobs.common import parse_job_args
from recsys.jobs.run import build_parser, main, stage_args

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--env", "test", "--conf-dir", str(REPO / "conf")]


def etl_args(*argv: str) -> list[str]:
    ctx = parse_job_args(build_parser(), [*COMMON, *argv])
    return stage_args("etl", ctx, dt.date(2024, 1, 1), "r")


def test_source_comes_from_config_unless_given(tmp_path: Path) -> None:
    args = etl_args("--set", "etl.source=events", "--input", str(tmp_path))
    assert args[args.index("--source") + 1] == "events"
    args = etl_args("--set", "etl.source=events", "--source", "movielens")
    assert args[args.index("--source") + 1] == "movielens"


def test_events_without_input_is_refused_before_any_stage(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*COMMON, "--lakehouse", str(tmp_path / "lh"), "--set", "etl.source=events"]) == 2
    assert "--input is required" in capsys.readouterr().err
    assert not (tmp_path / "lh").exists()
