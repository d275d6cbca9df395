"""ETL throughput against a plain Spark copy of the same files (CSV -> Parquet).

    python benchmarks/bench_etl.py [--interactions 10000000] [--users 100000] [--items 20000] [--dirty 0.02]

Synthesizes a MovieLens-layout dataset, then in one local Spark session (spark.driver.memory=1g) times
(1) a plain job that reads the same files and writes Parquet, (2) the full ETL into a fresh lakehouse and
(3) a "dedup floor": the least work that yields a table like ``interactions`` from these files (typed read,
the same user-partitioned hash aggregation for duplicates, an inline keyed hash as pseudonym, hashes as
indexes, the same period layout and the same Delta write of the same schema; no validation, quarantine,
dimension tables or accounting). The 1-minute load average is printed with each timing (other processes on
the machine skew them). The last line gives the rows/s of the copy and the ETL, the floor / plain and
ETL / floor ratios, and the ETL / plain time ratio (target: at most 3).

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

from recsys import schemas as S  # noqa: E402
from recsys.config import load_config  # noqa: E402
from recsys.etl import pipeline as P  # noqa: E402
from recsys.etl.rules import rating_weight  # noqa: E402
from recsys.etl.run_spec import RunSpec  # noqa: E402
from recsys.etl.settings import EtlConfig  # noqa: E402
from recsys.jobs.etl import run_etl  # noqa: E402
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


def dedup_floor(store: TableStore, data: str, cfg: EtlConfig, key: str, run_id: str) -> None:
    """The floor job (see the module docstring): writes table ``interactions`` of ``store``."""
    spark = store.spark
    raw = spark.read.schema("userId string, movieId string, rating string, timestamp string").option(
        "header", True).csv(f"{data}/ratings.csv")
    events = raw.select(F.col("userId").alias("user_raw"), F.col("movieId").alias("item_raw"),
                        F.col("rating").try_cast("float").alias(S.Col.RATING),
                        F.timestamp_seconds(F.col("timestamp").try_cast("long")).alias(S.Col.TS),
                        F.xxhash64("userId", "movieId", "rating", "timestamp").alias("tie"))
    input_bytes = sum(f.stat().st_size for f in Path(data, "ratings.csv").glob("*.csv"))
    tasks = P.task_count(input_bytes, cfg.input_mb_per_task, int(spark.conf.get("spark.sql.shuffle.partitions") or 1))
    unique = events.repartition(tasks, "user_raw").groupBy("user_raw", "item_raw", S.Col.TS).agg(
        F.min_by(S.Col.RATING, "tie").alias(S.Col.RATING))
    rows = P.write_layout(unique, tasks, 1, cfg.time_grain, user="user_raw").select(
        F.hash("user_raw").alias(S.Col.USER_IDX),
        F.sha2(F.concat(F.lit(key), "user_raw"), 256).alias(S.Col.USER_ID),
        F.hash("item_raw").alias(S.Col.ITEM_IDX), F.col("item_raw").alias(S.Col.ITEM_ID), S.Col.TS,
        F.to_date(S.Col.TS).alias(S.Col.EVENT_DATE), F.lit("rating").alias(S.Col.EVENT_TYPE),
        rating_weight(F.col(S.Col.RATING), cfg).alias(S.Col.WEIGHT), S.Col.RATING,
        F.lit("movielens").alias(S.Col.SOURCE), F.lit(run_id).alias(S.Col.RUN_ID),
        P.event_period(F.col(S.Col.TS), cfg.time_grain).alias(S.Col.EVENT_PERIOD))
    store.write(P.conform(rows, S.INTERACTIONS), S.Tables.INTERACTIONS, mode="overwrite",
                partition_by=list(S.PARTITION_COLUMNS[S.Tables.INTERACTIONS]),
                no_dictionary=S.NO_DICTIONARY_COLUMNS[S.Tables.INTERACTIONS])


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
    spec = RunSpec("movielens", data, run_date, "full")
    t = time.perf_counter()
    row = run_etl(store, config.etl, spec)
    etl_s = time.perf_counter() - t
    print(f"etl: {etl_s:.1f}s, {row['input_rows'] / etl_s:,.0f} rows/s (accepted {row['accepted']:,}, "
          f"quarantined {row['quarantined']:,}, duplicates {row['duplicates_removed']:,}, "
          f"invariant_ok {row['invariant_ok']}; {load()})", flush=True)
    files = len(store.snapshot("interactions").files)
    print(f"interactions files: {files}", flush=True)

    floor_config = load_config("local", overrides=[f"spark.driver_memory={args.driver_memory}"],
                               lakehouse=str(work / "floor-lakehouse"), conf_dir=REPO / "conf")
    floor_store = TableStore(spark, floor_config.storage)
    t = time.perf_counter()
    dedup_floor(floor_store, data, config.etl, os.environ["RECSYS_PSEUDONYM_KEY"], str(row["run_id"]))
    floor_s = time.perf_counter() - t
    floor_rows = floor_store.snapshot("interactions").num_records
    print(f"dedup floor: {floor_s:.1f}s, {rows / floor_s:,.0f} rows/s ({floor_rows:,} rows, "
          f"{len(floor_store.snapshot('interactions').files)} files; {load()})", flush=True)
    print(f"interactions={row['input_rows']} plain_rows_per_s={rows / plain_s:.0f} "
          f"etl_rows_per_s={row['input_rows'] / etl_s:.0f} floor_over_plain={floor_s / plain_s:.2f} "
          f"etl_over_floor={etl_s / floor_s:.2f} etl_over_plain={etl_s / plain_s:.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
