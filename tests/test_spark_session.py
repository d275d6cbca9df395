"""The SparkSession factory's local settings."""

from __future__ import annotations

import sys

import pytest
from pyspark.sql import SparkSession

from recsys import spark_session
from recsys.spark_session import JavaNotFoundError, get_spark, require_java


def test_local_session_settings(spark: SparkSession) -> None:
    conf = spark.conf
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.ansi.enabled") == "true"
    assert conf.get("spark.sql.shuffle.partitions") == "2"  # conf/test
    assert spark.sparkContext.getConf().get("spark.pyspark.python") == sys.executable
    assert spark.sparkContext.getConf().get("spark.ui.enabled") == "false"
    # no delta-spark jars here: no Delta extension configured
    assert "Delta" not in (spark.sparkContext.getConf().get("spark.sql.extensions", "") or "")
    assert not spark_session.delta_spark_available(spark)


def test_factory_reuses_the_active_session(spark: SparkSession) -> None:
    assert get_spark() is spark


def test_python_workers_run_this_interpreter(spark: SparkSession) -> None:
    import pyspark.sql.functions as F

    @F.udf("string")
    def interpreter(_: int) -> str:
        return sys.executable

    assert spark.range(1).select(interpreter("id")).first()[0] == sys.executable  # type: ignore[index]


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_session.shutil, "which", lambda _: None)
    with pytest.raises(JavaNotFoundError, match="openjdk-17"):
        require_java()


def test_session_conf_is_restored_after_the_block(spark: SparkSession) -> None:
    key, unset = "spark.sql.shuffle.partitions", "spark.sql.inMemoryColumnarStorage.batchSize"
    assert spark.conf.get(unset, None) is None
    with spark_session.session_conf(spark, {key: "7", unset: "123"}):
        assert (spark.conf.get(key), spark.conf.get(unset)) == ("7", "123")
    assert (spark.conf.get(key), spark.conf.get(unset, None)) == ("2", None)
