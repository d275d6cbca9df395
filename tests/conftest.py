"""Shared fixtures: one local SparkSession for the whole run, a fresh lakehouse per test."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RECSYS_ENV", "test")
os.environ["PYSPARK_PYTHON"] = sys.executable

from pyspark.sql import SparkSession

from recsys.config import AppConfig, load_config
from recsys.lakehouse import TableStore
from recsys.spark_session import get_spark

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def base_config() -> AppConfig:
    return load_config("test", conf_dir=REPO_ROOT / "conf")


@pytest.fixture(scope="session")
def spark(base_config: AppConfig) -> Iterator[SparkSession]:
    session = get_spark(base_config.spark)
    yield session
    session.stop()


@pytest.fixture()
def new_york() -> Iterator[None]:
    """The driver's local time zone set to America/New_York (UTC-5/-4) for the test."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = previous
    time.tzset()


@pytest.fixture()
def lakehouse(tmp_path: Path) -> Path:
    return tmp_path / "lakehouse"


@pytest.fixture()
def config(lakehouse: Path) -> AppConfig:
    return load_config("test", conf_dir=REPO_ROOT / "conf", lakehouse=str(lakehouse))


@pytest.fixture()
def store(spark: SparkSession, config: AppConfig) -> TableStore:
    return TableStore(spark, config.storage)
