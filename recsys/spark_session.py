"""The one SparkSession factory.

* Under ``spark-submit`` (or when a session is already active) it only calls ``getOrCreate()``: masters,
  memory, jars and Delta settings belong to the submission (``deploy/``).
* Locally it builds a ``local[*]`` session whose Python workers run this interpreter, with the UTC session
  time zone, ANSI mode, the UI off (or bound to 127.0.0.1) and shuffle partitions from config. The Delta SQL
  extension and catalog are enabled only when delta-spark's jars are available to the JVM.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from recsys.config.sections import SparkConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


@contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Runtime SQL settings for the duration of a block, restored (or unset) afterwards."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


class JavaNotFoundError(RuntimeError):
    """No Java runtime: Spark cannot start."""


def under_spark_submit() -> bool:
    """True when this Python process was launched by spark-submit (the JVM gateway already exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def require_java() -> None:
    """Fail early with an actionable message when no ``java`` is available."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return
    if shutil.which("java") is None:
        raise JavaNotFoundError(
            "Spark needs a Java runtime (17 or 21) and none was found on PATH or in $JAVA_HOME. "
            "Install one, e.g. `sudo apt-get install openjdk-17-jre-headless` (Debian/Ubuntu) or "
            "`brew install openjdk@17` (macOS), then retry."
        )


def _delta_jars_available(extra_conf: dict[str, str]) -> bool:
    """Whether delta-spark's JVM classes will be on the classpath of a local session."""
    import pyspark

    if "delta" in extra_conf.get("spark.jars.packages", "") or "delta" in extra_conf.get("spark.jars", ""):
        return True
    homes = [Path(pyspark.__file__).parent / "jars"]
    if os.environ.get("SPARK_HOME"):
        homes.append(Path(os.environ["SPARK_HOME"]) / "jars")
    return any(glob.glob(str(home / "delta-spark_*.jar")) for home in homes)


def get_spark(config: SparkConfig | None = None) -> SparkSession:
    """Return the SparkSession for this process (see module docstring)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if under_spark_submit():
        return SparkSession.builder.getOrCreate()
    config = config or SparkConfig()
    require_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    extra = dict(config.conf)
    builder = (
        SparkSession.builder.master(config.master)
        .appName(config.app_name)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "true" if config.ui_enabled else "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if _delta_jars_available(extra):
        builder = builder.config("spark.sql.extensions", DELTA_EXTENSION).config(
            "spark.sql.catalog.spark_catalog", DELTA_CATALOG
        )
    for key, value in extra.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("started local Spark %s (%s)", spark.version, config.master)
    return spark


def delta_spark_available(spark: SparkSession) -> bool:
    """Whether the native Delta backend can be used: delta-spark's classes load in this session's JVM and
    its SQL extension is configured (as deploy/spark-submit.sh and the local factory do)."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        return False
    try:
        jvm.java.lang.Class.forName(
            DELTA_EXTENSION, False, jvm.java.lang.Thread.currentThread().getContextClassLoader()
        )
    except Exception:
        return False
    return DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")
