"""ETL throughput against a plain Spark copy of the same files (CSV -> Parquet).

    python benchmarks/bench_etl.py [--interactions 10000000] [--users 100000] [--items 20000]

Synthesizes a MovieLens-layout dataset, then in one local Spark session (spark.driver.memory=1g) times
(1) a plain job that reads the same files and writes Parquet and (2) the full ETL into a fresh lakehouse.
The 1-minute load average is printed with each timing (other processes on the machine skew both). The last
line gives the rows/s of both and the ETL / plain time ratio (target: at most 3).
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

from recsys.config import load_config  # noqa: E402
from recsys.jobs.etl import RunSpec, make_run_id, run_etl  # noqa: E402
from recsys.lakehouse import TableStore  # noqa: E402
from recsys.spark_session import get_spark  # noqa: E402
from recsys.synth import SynthSpec, write_dataset  # noqa: E402


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--workdir", default=str(REPO / "bench-out" / "etl"))
    parser.add_argument("--driver-memory", default="1g")
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

    t = time.perf_counter()
    for name in ("ratings.csv", "movies.csv"):
        frame = spark.read.option("header", True).csv(f"{data}/{name}")
        frame.write.mode("overwrite").parquet(str(work / "plain" / name.replace(".csv", "")))
    plain_s = time.perf_counter() - t
    print(f"plain copy: {plain_s:.1f}s, {args.interactions / plain_s:,.0f} rows/s ({load()})", flush=True)

    store = TableStore(spark, config.storage)
    run_date = dt.date(2024, 1, 1)
    spec = RunSpec("movielens", data, run_date, "full", make_run_id("movielens", "full", run_date, data))
    t = time.perf_counter()
    row = run_etl(store, config.etl, spec)
    etl_s = time.perf_counter() - t
    print(f"etl: {etl_s:.1f}s, {args.interactions / etl_s:,.0f} rows/s (accepted {row['accepted']:,}, "
          f"quarantined {row['quarantined']:,}, duplicates {row['duplicates_removed']:,}, "
          f"invariant_ok {row['invariant_ok']}; {load()})", flush=True)
    files = len(store.snapshot("interactions").files)
    print(f"interactions files: {files}", flush=True)
    print(f"interactions={args.interactions} plain_rows_per_s={args.interactions / plain_s:.0f} "
          f"etl_rows_per_s={args.interactions / etl_s:.0f} etl_over_plain={etl_s / plain_s:.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
