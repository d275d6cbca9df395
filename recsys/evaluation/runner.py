"""The evaluation run: our model and every baseline, on the same split, through the same metric adapter.

This module runs Spark actions (ALS fitting, caching each model's lists to time it, the final small metric
aggregates) but no table I/O: the job passes the input DataFrames and writes the results.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import product

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys.baselines.als import AlsParams, als_recommend, fit_als
from recsys.baselines.dense import DENSE_BATCH
from recsys.baselines.item_knn import item_neighbours, knn_recommend, user_profiles
from recsys.baselines.popularity import most_popular
from recsys.evaluation.adapter import MODEL, bin_edges, evaluate_rankings, histogram
from recsys.evaluation.data import (
    POP_PCT,
    SEEN,
    before_test_interactions,
    item_stats,
    positives,
    seen_from,
    train_interactions,
)
from recsys.evaluation.settings import EvaluateConfig
from recsys.schemas import Col
from recsys.scoring.blocks import KernelSpec
from recsys.scoring.recommend import ScoringPlan, plan_scoring, scoring_users, top_k
from recsys.scoring.settings import ScoreConfig

log = logging.getLogger(__name__)

OURS = "ours"


@dataclass
class EvalInputs:
    """Input DataFrames (``None`` where the table does not exist)."""

    interactions: DataFrame
    test_truth: DataFrame
    catalog: DataFrame  # item_idx of every item in the catalog
    validation_truth: DataFrame | None = None
    user_histories: DataFrame | None = None
    item_tokens: DataFrame | None = None
    item_embeddings: DataFrame | None = None  # of the evaluated model version only
    user_embeddings: DataFrame | None = None
    model_version: str | None = None
    # time_cutoff split: (validation_cutoff, cutoff) as ``recsys prepare`` used them; (None, None) otherwise
    split_cutoffs: tuple[dt.datetime | None, dt.datetime | None] = (None, None)


@dataclass
class EvalResult:
    """Small, driver-side results."""

    metrics: pd.DataFrame  # model, metric, k, value, users_evaluated, split
    seconds: dict[str, float] = field(default_factory=dict)  # time to produce each model's lists
    histograms: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> (model?, bin, lo, hi, count)
    best_als: str | None = None


def _timed(name: str, seconds: dict[str, float], make: Callable[[], DataFrame]) -> DataFrame:
    started = time.perf_counter()
    frame = make().cache()
    count = frame.count()
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    log.info("%s: %d recommendations in %.1fs", name, count, seconds[name])
    return frame


def _metrics(spark: SparkSession, recs: dict[str, DataFrame], truth: DataFrame, stats: DataFrame,
             ks: tuple[int, ...], split: str) -> pd.DataFrame:
    union = None
    for name, frame in recs.items():
        tagged = frame.select(F.lit(name).alias(MODEL), Col.USER_IDX, Col.ITEM_IDX, Col.RANK)
        union = tagged if union is None else union.unionByName(tagged)
    if union is None:
        return pd.DataFrame(columns=["model", "metric", "k", "value", "users_evaluated", "split"])
    rows = pd.DataFrame(evaluate_rankings(spark, union, truth, stats, list(recs), ks).toPandas())
    rows["split"] = split
    return rows


def _our_model(inputs: EvalInputs, users: DataFrame, n_users: int, k: int, score: ScoreConfig,
               parallelism: int) -> DataFrame:
    assert inputs.item_embeddings is not None and inputs.user_embeddings is not None
    items = inputs.item_embeddings
    sizes = items.agg(F.count(F.lit(1)), F.max(Col.ITEM_IDX), F.max(F.size(Col.EMBEDDING))).first()
    assert sizes is not None
    plan = plan_scoring(n_users, int(sizes[0] or 0), int(sizes[1] or 0), int(sizes[2] or 0), score, parallelism)
    embedded = inputs.user_embeddings.join(users.select(Col.USER_IDX), Col.USER_IDX, "left_semi")
    frame = scoring_users(embedded, users.select(Col.USER_IDX, SEEN, F.array().cast("array<int>").alias(
        Col.HISTORY)))
    spec = KernelSpec(k=k, user_batch_size=score.user_batch_size, chunk_size=score.item_chunk_size,
                      explanation="none", blas_threads=score.blas_threads)
    # seen items are excluded for every model alike, whatever score.exclude_seen serves
    return top_k(frame, items, plan, spec, exclude_seen=True).select(
        Col.USER_IDX, Col.ITEM_IDX, Col.SCORE, Col.RANK
    )


def run_evaluation(spark: SparkSession, inputs: EvalInputs, cfg: EvaluateConfig,
                   score: ScoreConfig) -> EvalResult:
    """Rank the test users with our model and each configured baseline; metrics of all on the test split."""
    ks = tuple(sorted(set(cfg.ks) | {cfg.primary_k}))
    k = max(ks)
    parallelism = spark.sparkContext.defaultParallelism
    pos = positives(inputs.interactions)
    val, test = inputs.validation_truth, inputs.test_truth
    validation_cutoff, test_cutoff = inputs.split_cutoffs
    train = train_interactions(pos, val, test, validation_cutoff or test_cutoff).cache()
    before_test = before_test_interactions(pos, test, test_cutoff).cache() if cfg.refit_with_validation else train
    stats = item_stats(inputs.catalog, before_test, inputs.item_tokens).cache()
    seen_test = seen_from(before_test)
    if inputs.user_histories is not None:
        hist_seen = inputs.user_histories.select(Col.USER_IDX, F.col(SEEN).alias("_h"))
        seen_test = seen_test.join(hist_seen, Col.USER_IDX, "full").select(
            Col.USER_IDX, F.coalesce("_h", SEEN).alias(SEEN))
    test_users = test.select(Col.USER_IDX).distinct().join(seen_test, Col.USER_IDX, "left").cache()
    n_test_users = test_users.count()
    catalog = inputs.catalog.agg(F.count(F.lit(1)), F.max(Col.ITEM_IDX)).first()
    assert catalog is not None

    def dense_plan(n_users: int, dim: int) -> ScoringPlan:
        """Layout of the baselines' item vectors (``dim`` floats for every catalog item at most)."""
        dense = replace(score, user_batch_size=DENSE_BATCH)  # the batch size dense_top_k packs users in
        return plan_scoring(n_users, int(catalog[0] or 0), int(catalog[1] or 0), dim, dense, parallelism)

    result = EvalResult(metrics=pd.DataFrame())
    recs: dict[str, DataFrame] = {}
    if inputs.item_embeddings is not None and inputs.user_embeddings is not None:
        recs[OURS] = _timed(OURS, result.seconds,
                            lambda: _our_model(inputs, test_users, n_test_users, k, score, parallelism))
    popular = None
    if "most_popular" in cfg.baselines or "item_knn" in cfg.baselines:
        popular = _timed("most_popular", result.seconds,
                         lambda: most_popular(before_test, test_users, k, dense_plan(n_test_users, 1)))
        if "most_popular" in cfg.baselines:
            recs["most_popular"] = popular
    validation_rows = []
    if "als" in cfg.baselines:
        grid = [AlsParams(r, g, a) for r, g, a in product(cfg.als_ranks, cfg.als_reg_params, cfg.als_alphas)]
        best, started = grid[0], time.perf_counter()
        if val is not None and len(grid) > 1:
            val_users = val.select(Col.USER_IDX).distinct().join(seen_from(train), Col.USER_IDX, "left").cache()
            try:
                n_val_users = val_users.count()
                val_recs = {}
                for params in grid:
                    model = fit_als(train, params, cfg.als_max_iter, cfg.seed)
                    val_recs[params.label] = als_recommend(model, val_users, k,
                                                           dense_plan(n_val_users, params.rank))
                rows = _metrics(spark, val_recs, val, stats, (cfg.primary_k,), "validation")
            finally:
                val_users.unpersist()
            validation_rows.append(rows)
            pick = rows[(rows.metric == cfg.primary_metric) & (rows.k == cfg.primary_k)].set_index("model")
            scores = [float(pick.value.get(p.label, 0.0)) for p in grid]
            for params, value in zip(grid, scores, strict=True):
                log.info("ALS %s: validation %s@%d = %.4f", params.label, cfg.primary_metric, cfg.primary_k,
                         value)
            best = grid[max(range(len(grid)), key=lambda i: (scores[i], -i))]
        result.best_als = best.label
        result.seconds["als"] = time.perf_counter() - started
        final = fit_als(before_test, best, cfg.als_max_iter, cfg.seed)
        recs["als"] = _timed("als", result.seconds,
                             lambda: als_recommend(final, test_users, k, dense_plan(n_test_users, best.rank)))
    if "item_knn" in cfg.baselines and popular is not None:
        fallback = popular

        def knn() -> DataFrame:
            profiles = user_profiles(before_test, cfg.knn_max_user_items).cache()
            neighbours = item_neighbours(profiles, cfg.knn_neighbours)
            return knn_recommend(neighbours, profiles, test_users, k, fallback)

        recs["item_knn"] = _timed("item_knn", result.seconds, knn)
    test_rows = _metrics(spark, recs, test, stats, ks, "test")
    result.metrics = pd.concat([test_rows, *validation_rows], ignore_index=True)
    result.histograms = _histograms(recs, stats, cfg)
    for frame in [*recs.values(), train, before_test, stats, test_users]:
        frame.unpersist()
    return result


def _histograms(recs: dict[str, DataFrame], stats: DataFrame, cfg: EvaluateConfig) -> dict[str, pd.DataFrame]:
    """Score distribution of our model's lists; popularity-percentile distribution of every model's."""
    out: dict[str, pd.DataFrame] = {}
    bins = cfg.histogram_bins
    if OURS in recs:
        ours = recs[OURS].where(F.col(Col.RANK) <= cfg.primary_k)
        bounds = ours.agg(F.min(Col.SCORE), F.max(Col.SCORE)).first()
        if bounds is not None and bounds[0] is not None:
            lo, hi = float(bounds[0]), float(bounds[1])
            counts = histogram(ours, Col.SCORE, lo, hi, bins).toPandas()
            out["score"] = _with_edges(counts, lo, hi, bins)
    frames = None
    for name, frame in recs.items():
        tagged = frame.where(F.col(Col.RANK) <= cfg.primary_k).select(F.lit(name).alias(MODEL), Col.ITEM_IDX)
        frames = tagged if frames is None else frames.unionByName(tagged)
    if frames is not None:
        joined = frames.join(stats.select(Col.ITEM_IDX, POP_PCT), Col.ITEM_IDX, "left").fillna(0.0, [POP_PCT])
        out["popularity"] = _with_edges(histogram(joined, POP_PCT, 0.0, 1.0, bins, by=MODEL).toPandas(),
                                        0.0, 1.0, bins)
    return out


def _with_edges(counts: pd.DataFrame, lo: float, hi: float, bins: int) -> pd.DataFrame:
    edges = bin_edges(lo, hi, bins)
    counts = counts.copy()
    counts["lo"] = [float(edges[b]) for b in counts["bin"]]
    counts["hi"] = [float(edges[b + 1]) for b in counts["bin"]]
    return counts.sort_values([c for c in (MODEL, "bin") if c in counts.columns]).reset_index(drop=True)
