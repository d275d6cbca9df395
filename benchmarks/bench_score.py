"""Scoring throughput: `recsys score` vs the matrix-multiply bound vs Spark MLlib ALSModel.recommendForAllUsers.

    python benchmarks/bench_score.py [--users 200000] [--items 50000] [--dim 64] [--k 10]

Synthetic random embeddings (and seen items / histories) are written as tables into a temporary lakehouse
(not timed). Then, in one run:

* ours: the whole ``recsys score`` job (exact top-K with seen-item exclusion and explanations, Delta write),
  run once to warm up (JVM, Python workers; printed) and timed on the second run (ALS also runs warm, on
  cached factors); also the top-K transform alone into Spark's ``noop`` sink;
* bound: measured single-process sgemm FLOP/s (all cores) / (2 * dim) = user-item pairs per second;
* ALS: an ``ALSModel`` built on the same factors (through its JVM constructor) and
  ``recommendForAllUsers(k)`` into the ``noop`` sink (no exclusion, no explanations).

The last line reports pairs/s of each, our/ALS ratio and our fraction of the bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys.config import load_config
from recsys.lakehouse import TableStore
from recsys.schemas import MODELS, Col, Tables
from recsys.spark_session import get_spark


def vectors(spark: SparkSession, n: int, dim: int, seed: int, id_col: str, partitions: int) -> DataFrame:
    cols = [F.randn(seed * 1000 + j).cast("float") for j in range(dim)]
    return spark.range(n, numPartitions=partitions).select(
        F.col("id").cast("int").alias(id_col), F.array(*cols).alias(Col.EMBEDDING)
    )


def write_inputs(spark: SparkSession, store: TableStore, args: argparse.Namespace) -> None:
    parts = max(2, spark.sparkContext.defaultParallelism)
    items = vectors(spark, args.items, args.dim, 1, Col.ITEM_IDX, parts).select(
        Col.ITEM_IDX, F.concat(F.lit("i"), F.col(Col.ITEM_IDX).cast("string")).alias(Col.ITEM_ID),
        Col.EMBEDDING, F.lit(False).alias("is_cold"), F.lit("bench").alias(Col.MODEL_VERSION))
    store.write(items, Tables.ITEM_EMBEDDINGS, mode="overwrite")
    users = vectors(spark, args.users, args.dim, 2, Col.USER_IDX, parts).select(
        Col.USER_IDX, F.concat(F.lit("u"), F.col(Col.USER_IDX).cast("string")).alias(Col.USER_ID),
        Col.EMBEDDING, F.lit("bench").alias(Col.MODEL_VERSION))
    store.write(users, Tables.USER_EMBEDDINGS, mode="overwrite")
    seen = F.transform(F.sequence(F.lit(1), F.lit(args.seen)),
                       lambda x: F.pmod(F.xxhash64(F.col("id"), x), F.lit(args.items)).cast("int"))
    hist = spark.range(args.users, numPartitions=parts).select(
        F.col("id").cast("int").alias(Col.USER_IDX), F.concat(F.lit("u"), F.col("id").cast("string")).alias(
            Col.USER_ID), seen.alias("seen_items"))
    hist = hist.select(Col.USER_IDX, Col.USER_ID, F.slice("seen_items", -args.history, args.history).alias(
        Col.HISTORY), F.lit(args.history).alias(Col.HISTORY_LEN), "seen_items")
    store.write(hist, Tables.USER_HISTORIES, mode="overwrite")
    model: list[tuple[object, ...]] = [("bench", dt.datetime(2024, 1, 1), "", "random", args.dim, {}, {}, "", "{}")]
    store.write(spark.createDataFrame(model, MODELS), Tables.MODELS, mode="overwrite")


def matmul_bound(dim: int, items: int) -> float:
    """Pairs per second of a (4096 x dim) @ (dim x items) float32 multiply, best of 3."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, dim), dtype=np.float32)
    b = rng.standard_normal((min(items, 50_000), dim), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        _ = a @ b.T
        best = min(best, time.perf_counter() - started)
    flops = 2.0 * a.shape[0] * b.shape[0] * dim / best
    return flops / (2 * dim)


def als_recommend_all(spark: SparkSession, store: TableStore, dim: int, k: int) -> float:
    """Seconds for ALSModel.recommendForAllUsers(k) on the benchmark factors (noop sink)."""
    from pyspark.ml.recommendation import ALSModel

    user_f = store.read(Tables.USER_EMBEDDINGS).select(F.col(Col.USER_IDX).alias("id"),
                                                       F.col(Col.EMBEDDING).alias("features")).cache()
    item_f = store.read(Tables.ITEM_EMBEDDINGS).select(F.col(Col.ITEM_IDX).alias("id"),
                                                       F.col(Col.EMBEDDING).alias("features")).cache()
    user_f.count(), item_f.count()
    jvm: Any = spark._jvm
    java_model = jvm.org.apache.spark.ml.recommendation.ALSModel("bench_als", dim, user_f._jdf, item_f._jdf)
    java_model.setUserCol("user").setItemCol("item")  # Java-side params: recommendForAllUsers reads them
    model = ALSModel(java_model)
    started = time.perf_counter()
    model.recommendForAllUsers(k).write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    user_f.unpersist(), item_f.unpersist()
    return seconds


def transform_only(spark: SparkSession, store: TableStore, env: str, lakehouse: str) -> float:
    """Seconds for the scoring transform alone (top-K + explanations) into the noop sink."""
    from recsys.jobs.score import model_frames
    from recsys.scoring.blocks import KernelSpec
    from recsys.scoring.recommend import plan_scoring, scoring_users, top_k

    cfg = load_config(env, lakehouse=lakehouse).score
    items, users = model_frames(store, "bench")
    sizes = items.agg(F.count(F.lit(1)), F.max(Col.ITEM_IDX), F.max(F.size(Col.EMBEDDING))).first()
    assert sizes is not None
    plan = plan_scoring(users.count(), sizes[0], sizes[1], sizes[2], cfg, spark.sparkContext.defaultParallelism)
    started = time.perf_counter()
    spec = KernelSpec(cfg.top_k, cfg.user_batch_size, cfg.item_chunk_size, cfg.explanation, cfg.blas_threads,
                      cfg.kernel_block_bytes)
    frame = top_k(scoring_users(users, store.read(Tables.USER_HISTORIES)), items, plan, spec)
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def load() -> str:
    """1-minute load average (other processes share the cores: read every timing with it)."""
    return f"load {os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seen", type=int, default=20, help="seen (excluded) items per user")
    parser.add_argument("--history", type=int, default=10, help="history items per user (explanations)")
    parser.add_argument("--env", default="local")
    parser.add_argument("--skip-als", action="store_true")
    parser.add_argument("--no-warmup", action="store_true", help="time the first (cold) score job run")
    parser.add_argument("--skip-transform", action="store_true", help="skip the top-K-only (noop sink) timing")
    parser.add_argument("--lakehouse", default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)
    lakehouse = args.lakehouse or tempfile.mkdtemp(prefix="bench_score_")
    config = load_config(args.env, lakehouse=lakehouse)
    spark = get_spark(config.spark)
    store = TableStore(spark, config.storage)
    pairs = args.users * args.items
    print(f"sizes: {args.users} users x {args.items} items, d={args.dim}, K={args.k}, {os.cpu_count()} cores, "
          f"lakehouse {lakehouse}", flush=True)
    write_inputs(spark, store, args)

    from recsys.jobs.score import main as score_main

    print(f"inputs written; {load()}", flush=True)

    def job(run_date: str) -> tuple[int, float]:
        started = time.perf_counter()
        code = score_main(["--env", args.env, "--lakehouse", lakehouse, "--run-date", run_date,
                           "--set", f"score.top_k={args.k}", "--log-level", "WARNING"])
        return code, time.perf_counter() - started

    if not args.no_warmup:  # the first job of a session pays JVM/JIT and Python-worker start-up: reported apart
        code, cold = job("2023-12-31")
        print(f"ours (score job, cold first run):    {cold:8.1f}s  {pairs / cold:12.4g} pairs/s  {load()}", flush=True)
    code, ours_job = job("2024-01-01")
    if code != 0:
        print("score job failed", file=sys.stderr)
        return code
    print(f"ours (score job, incl. Delta write): {ours_job:8.1f}s  {pairs / ours_job:12.4g} pairs/s  {load()}",
          flush=True)
    ours_transform = float("nan") if args.skip_transform else transform_only(spark, store, args.env, lakehouse)
    print(f"ours (top-K transform, noop sink):   {ours_transform:8.1f}s  {pairs / ours_transform:12.4g} pairs/s  "
          f"{load()}", flush=True)
    bound = matmul_bound(args.dim, args.items)
    print(f"sgemm bound:                                   {bound:12.4g} pairs/s  {load()}", flush=True)
    als = float("nan") if args.skip_als else als_recommend_all(spark, store, args.dim, args.k)
    print(f"ALS recommendForAllUsers (noop):     {als:8.1f}s  {pairs / als:12.4g} pairs/s  {load()}", flush=True)
    ours_rate, transform_rate, als_rate = pairs / ours_job, pairs / ours_transform, pairs / als
    print(f"RESULT users={args.users} items={args.items} d={args.dim} k={args.k} "
          f"ours_pairs_per_s={ours_rate:.4g} als_pairs_per_s={als_rate:.4g} bound_pairs_per_s={bound:.4g} "
          f"ours_vs_als={ours_rate / als_rate:.1f}x ours_fraction_of_bound={ours_rate / bound:.1%} "
          f"transform_fraction_of_bound={transform_rate / bound:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
