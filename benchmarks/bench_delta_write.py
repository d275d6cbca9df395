"""Delta write through the table layer vs. a plain Spark Parquet write of the same DataFrame.

Usage: python benchmarks/bench_delta_write.py [--rows 5000000] [--partitions 8] [--repeat 2]

The DataFrame is materialised once (cached) so both writers pay only for writing. The two writers take turns
(``--repeat`` rounds, plus one untimed warm-up round), each Parquet write into a fresh directory like each
Delta write; the best time of each counts. Last line: the Delta/Parquet time ratio (target <= 1.3).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys.config import load_config
from recsys.lakehouse import TableStore
from recsys.spark_session import get_spark


def make_frame(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    return spark.range(rows, numPartitions=partitions).select(
        F.col("id").alias("event_id"),
        (F.col("id") % 100_000).cast("int").alias("user_idx"),
        (F.hash("id") % 50_000).cast("int").alias("item_idx"),
        F.timestamp_seconds(F.lit(1_600_000_000) + F.col("id") % 31_536_000).alias("ts"),
        (F.rand(7) * 5).cast("float").alias("rating"),
        F.concat(F.lit("src-"), (F.col("id") % 7).cast("string")).alias("source"),
    )


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = load_config("local")
    spark = get_spark(config.spark)
    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    try:
        frame = make_frame(spark, args.rows, args.partitions).cache()
        frame.count()
        parquet_dir = work / "parquet"
        codec = config.storage.compression  # same codec for both writers
        store = TableStore(spark, load_config("local", lakehouse=str(work / "lakehouse")).storage)
        parquet_times, delta_times = [], []
        for round_ in range(args.repeat + 1):
            target = str(parquet_dir / f"round-{round_}")
            mode = "overwrite" if round_ else "error"
            parquet_s = timed(lambda t=target: frame.write.mode("error").option("compression", codec).parquet(t))
            delta_s = timed(lambda m=mode: store.write(frame, "bench", mode=m))
            if round_:  # round 0 warms up the JVM and the Python workers
                parquet_times.append(parquet_s)
                delta_times.append(delta_s)
        parquet_s, delta_s = min(parquet_times), min(delta_times)
        assert store.read("bench").count() == args.rows
        print(f"rows: {args.rows:,}  partitions: {args.partitions}  cores: {spark.sparkContext.defaultParallelism}"
              f"  codec: {codec}")
        print(f"spark parquet write : {parquet_s:7.2f} s  {args.rows / parquet_s:12,.0f} rows/s")
        print(f"recsys delta write  : {delta_s:7.2f} s  {args.rows / delta_s:12,.0f} rows/s  ({store.backend})")
        print(f"delta/parquet time ratio: {delta_s / parquet_s:.2f} (target <= 1.30)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
