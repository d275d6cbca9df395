"""ETL throughput against a plain Spark copy of the same files (CSV -> Parquet).

    python benchmarks/bench_etl.py [--interactions 10000000] [--users 100000] [--items 20000] [--dirty 0.02]

Synthesizes a MovieLens-layout dataset, then in one local Spark session (spark.driver.memory=1g) times
(1) a plain job that reads the same files and writes Parquet and (2) the full ETL into a fresh lakehouse.
The 1-minute load average is printed with each timing (other processes on the machine skew both). The last
line gives the rows/s of both and the ETL / plain time ratio (target: at most 3).

``--dirty F`` adds, in one more file of the ratings, exact copies of a fraction F of the rows, as many again
conflicting copies (same user, item and timestamp, another rating) for half of that fraction, and bad rows
(wrong field count, unparsable timestamp) for a tenth of it each, so the dedup and quarantine paths run at
scale too. Default 0: the synthetic data alone, which has neither.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from recsys.config import load_config  # noqa: E402
from recsys.jobs.etl import RunSpec, make_run_id, run_etl  # noqa: E402
from recsys.lakehouse import TableStore  # noqa: E402
from recsys.spark_session import get_spark  # noqa: E402
from recsys.synth import SynthSpec, write_dataset  # noqa: E402


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def add_dirty_rows(spark: SparkSession, data: str, fraction: float, scratch: Path) -> int:
    """Write the ``--dirty`` rows (see the module docstring) as one more file of ``ratings.csv``; their count."""
    lines = spark.read.text(f"{data}/ratings.csv").where(~F.col("value").startswith("userId"))
    copies = lines.sample(fraction=fraction, seed=1)
    conflicting = lines.sample(fraction=fraction / 2, seed=2).select(
        F.regexp_replace("value", r",[0-9.]+,([0-9]+)$", ",0.5,$1").alias("value"))
    wrong_fields = lines.sample(fraction=fraction / 10, seed=3).select(F.concat("value", F.lit(",x")).alias("value"))
    bad_ts = lines.sample(fraction=fraction / 10, seed=4).select(
        F.regexp_replace("value", ",[0-9]+$", ",yesterday").alias("value"))
    dirty = copies.unionByName(conflicting).unionByName(wrong_fields).unionByName(bad_ts)
    dirty.coalesce(1).write.mode("overwrite").text(str(scratch))
    (part,) = scratch.glob("part-*")
    shutil.move(str(part), f"{data}/ratings.csv/part-dirty.csv")
    return int(spark.read.text(f"{data}/ratings.csv/part-dirty.csv").count())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--workdir", default=str(REPO / "bench-out" / "etl"))
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--dirty", type=float, default=0.0, help="fraction of rows to copy (see above)")
    args = parser.parse_args()
    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", secrets.token_hex(32))
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = load_config("local", overrides=[f"spark.driver_memory={args.driver_memory}"],
                         lakehouse=str(work / "lakehouse"), conf_dir=REPO / "conf")
    spark = get_spark(config.spark)
    data = str(work / "input")
    t = time.perf_counter()
    write_dataset(spark, SynthSpec(args.users, args.items, args.interactions, seed=7), data, "movielens")
    print(f"synthesized {args.interactions:,} interactions in {time.perf_counter() - t:.1f}s ({load()})",
          flush=True)
    if args.dirty > 0:
        print(f"dirty rows added: {add_dirty_rows(spark, data, args.dirty, work / 'dirty'):,}", flush=True)

    rows = spark.read.text(f"{data}/ratings.csv").where(~F.col("value").startswith("userId")).count()
    t = time.perf_counter()
    for name in ("ratings.csv", "movies.csv"):
        frame = spark.read.option("header", True).csv(f"{data}/{name}")
        frame.write.mode("overwrite").parquet(str(work / "plain" / name.replace(".csv", "")))
    plain_s = time.perf_counter() - t
    print(f"plain copy: {plain_s:.1f}s, {rows / plain_s:,.0f} rows/s ({load()})", flush=True)

    store = TableStore(spark, config.storage)
    run_date = dt.date(2024, 1, 1)
    spec = RunSpec("movielens", data, run_date, "full", make_run_id("movielens", "full", run_date, data))
    t = time.perf_counter()
    row = run_etl(store, config.etl, spec)
    etl_s = time.perf_counter() - t
    print(f"etl: {etl_s:.1f}s, {row['input_rows'] / etl_s:,.0f} rows/s (accepted {row['accepted']:,}, "
          f"quarantined {row['quarantined']:,}, duplicates {row['duplicates_removed']:,}, "
          f"invariant_ok {row['invariant_ok']}; {load()})", flush=True)
    files = len(store.snapshot("interactions").files)
    print(f"interactions files: {files}", flush=True)
    print(f"interactions={row['input_rows']} plain_rows_per_s={rows / plain_s:.0f} "
          f"etl_rows_per_s={row['input_rows'] / etl_s:.0f} etl_over_plain={etl_s / plain_s:.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
