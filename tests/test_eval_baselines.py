"""The metric adapter, the train/test data definitions and the baselines against plain-Python references."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from recsys.baselines.item_knn import item_neighbours, knn_recommend, user_profiles
from recsys.baselines.popularity import most_popular
from recsys.evaluation.adapter import evaluate_rankings
from recsys.evaluation.data import before_test_interactions, item_stats, train_interactions
from recsys.evaluation.metrics import user_metrics
from recsys.scoring.recommend import ScoringPlan, plan_scoring
from recsys.scoring.settings import ScoreConfig

T0 = dt.datetime(2024, 1, 1)


def test_adapter_matches_per_user_functions(spark: SparkSession) -> None:
    recs = {  # model -> user -> ranked items
        "a": {1: [10, 11, 12], 2: [12, 13, 10], 3: [14, 10, 11]},
        "b": {1: [11, 10, 13], 2: [10, 11, 12]},  # user 3 has no list: scores 0 but is evaluated
    }
    truth = {1: {10}, 2: {13, 99}, 3: {11}}  # 99 is a cold item
    rows = [(m, u, i, r + 1) for m, lists in recs.items() for u, items in lists.items() for r, i in enumerate(items)]
    recs_df = spark.createDataFrame(rows, "model string, user_idx int, item_idx int, rank int")
    truth_df = spark.createDataFrame([(u, i) for u, s in truth.items() for i in s], "user_idx int, item_idx int")
    stats = spark.createDataFrame(
        [(i, 0 if i == 99 else 5, i == 99, (i - 10) / 5.0, float(np.log1p(i))) for i in [*range(10, 16), 99]],
        "item_idx int, train_count long, is_cold boolean, popularity_percentile double, log_popularity double",
    )
    out: pd.DataFrame = evaluate_rankings(spark, recs_df, truth_df, stats, ["a", "b"], [1, 2]).toPandas()
    got = {(r.model, r.metric, r.k): (r.value, r.users_evaluated) for r in out.itertuples()}
    for model, lists in recs.items():
        per_user = [user_metrics(lists.get(u, []), rel, [1, 2], rel & {99}) for u, rel in truth.items()]
        for key in per_user[0]:
            values = [m[key] for m in per_user if key in m]
            assert got[(model, *key)] == (pytest.approx(np.mean(values)), len(values))
        for k in (1, 2):
            items = [i for items in lists.values() for i in items[:k]]
            assert got[(model, "coverage", k)][0] == pytest.approx(len(set(items)) / 7)
            assert got[(model, "popularity_percentile", k)][0] == pytest.approx(np.mean([(i - 10) / 5 for i in items]))
    assert got[("a", "cold_recall", 2)] == (0.0, 1)


def test_train_split_and_most_popular(spark: SparkSession) -> None:
    schema = "user_idx int, item_idx int, ts timestamp, weight float"
    inter = [(1, i, T0 + dt.timedelta(hours=i), 1.0) for i in range(6)]  # user 1: items 0..5 in order
    inter += [(2, i, T0, 1.0) for i in (0, 1, 2)] + [(3, 0, T0, 1.0), (3, 1, T0, 1.0)]
    frame = spark.createDataFrame(inter, schema)
    val = spark.createDataFrame([(1, 4, T0 + dt.timedelta(hours=4))], "user_idx int, item_idx int, ts timestamp")
    test = spark.createDataFrame([(1, 5, T0 + dt.timedelta(hours=5)), (2, 1, T0)],
                                 "user_idx int, item_idx int, ts timestamp")
    train = {(r[0], r[1]) for r in train_interactions(frame, val, test).collect()}
    # user 1 before its validation item; user 2 before (T0, item 1) in (ts, item_idx) order; user 3 all
    assert train == {(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (3, 0), (3, 1)}
    users = spark.createDataFrame([(1, [0]), (2, []), (9, None)], "user_idx int, seen_items array<int>")
    # one broadcast block, and blocks of 2 item indexes joined to the users (the plan of a large catalog)
    for plan in (plan_scoring(3, 6, 5, 1, ScoreConfig(), 2), ScoringPlan(False, 2, 3, 2)):
        recs = most_popular(frame, users, 3, plan).collect()
        lists = {u: [r.item_idx for r in sorted(recs, key=lambda r: r.rank) if r.user_idx == u] for u in (1, 2, 9)}
        # popularity: item 0: 3 users, item 1: 3, item 2: 2, items 3..5: 1 (ties -> smaller item_idx first)
        assert lists == {1: [1, 2, 3], 2: [0, 1, 2], 9: [0, 1, 2]}, plan
    assert plan_scoring(3, 6, 5, 1, ScoreConfig(broadcast_max_bytes=8), 2) == ScoringPlan(False, 2, 3, 1)
    stats = {r.item_idx: r for r in item_stats(spark.createDataFrame([(i,) for i in range(8)], "item_idx int"),
                                               frame, None).collect()}
    assert stats[0].train_count == 3 and stats[7].is_cold and not stats[5].is_cold
    assert stats[0].popularity_percentile == pytest.approx(6 / 7)  # tied with item 1: percent rank
    assert stats[7].popularity_percentile == 0.0


def test_time_cutoff_split_keeps_later_events_out_of_the_fit(spark: SparkSession) -> None:
    """With a time-cutoff split, a user without held-out rows (all of whose events came after the cutoff, so
    prepare held nothing out for them) must not bring those events into the baselines' fit data."""
    val_cut, test_cut = T0 + dt.timedelta(days=10), T0 + dt.timedelta(days=20)
    day = dt.timedelta(days=1)
    inter = [(1, 0, T0, 1.0), (1, 1, val_cut + day, 1.0), (1, 2, val_cut + 2 * day, 1.0), (1, 3, test_cut + day, 1.0)]
    inter += [(2, 7, val_cut + day, 1.0), (2, 8, test_cut + day, 1.0)]  # no history before the cutoffs
    frame = spark.createDataFrame(inter, "user_idx int, item_idx int, ts timestamp, weight float")
    val = spark.createDataFrame([(1, 1, val_cut + day)], "user_idx int, item_idx int, ts timestamp")
    test = spark.createDataFrame([(1, 3, test_cut + day)], "user_idx int, item_idx int, ts timestamp")
    pairs = lambda f: {(r.user_idx, r.item_idx) for r in f.collect()}  # noqa: E731
    assert pairs(train_interactions(frame, val, test, val_cut)) == {(1, 0)}
    # before the test cutoff: what was known at test time, user 2's validation-period event included
    assert pairs(before_test_interactions(frame, test, test_cut)) == {(1, 0), (1, 1), (1, 2), (2, 7)}
    assert (2, 8) in pairs(train_interactions(frame, val, test))  # what a per-user cut alone would keep


def test_item_knn_matches_numpy(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    n_users, n_items = 12, 9
    matrix = (rng.random((n_users, n_items)) < 0.4).astype(float)
    rows = [(u, i, T0 + dt.timedelta(hours=i), 1.0) for u in range(n_users) for i in range(n_items) if matrix[u, i]]
    fit = spark.createDataFrame(rows, "user_idx int, item_idx int, ts timestamp, weight float")
    profiles = user_profiles(fit, 100).cache()
    neighbours: pd.DataFrame = item_neighbours(profiles, 3).toPandas()
    norms = np.sqrt(matrix.sum(axis=0))
    cosine = (matrix.T @ matrix) / np.outer(norms, norms).clip(1e-12)
    np.fill_diagonal(cosine, 0)
    expected_sim = {}
    for i in range(n_items):
        order = [j for j in np.lexsort((np.arange(n_items), -cosine[i])) if j != i and cosine[i, j] > 0][:3]
        got = neighbours[neighbours.item_idx == i].sort_values(["similarity", "neighbour_idx"],
                                                               ascending=[False, True])
        assert got.neighbour_idx.tolist() == order
        assert got.similarity.tolist() == pytest.approx([cosine[i, j] for j in order])
        expected_sim.update({(i, j): cosine[i, j] for j in order})
    users = spark.createDataFrame([(u, [int(i) for i in np.flatnonzero(matrix[u])]) for u in range(n_users)],
                                  "user_idx int, seen_items array<int>")
    fallback = spark.createDataFrame([(u, i, r + 1) for u in range(n_users) for r, i in enumerate(range(n_items))],
                                     "user_idx int, item_idx int, rank int")
    recs: pd.DataFrame = knn_recommend(spark.createDataFrame(neighbours), profiles, users, 4, fallback).toPandas()
    # scores are sums of similarities in fixed point (2**40 per unit), so ties and order are exact
    fixed = {(r.item_idx, r.neighbour_idx): int(r.similarity * 2**40) for r in neighbours.itertuples()}
    for u in range(n_users):
        seen = set(np.flatnonzero(matrix[u]))
        scores = {j: sum(fixed.get((h, j), 0) for h in seen) for j in range(n_items) if j not in seen}
        scored = sorted((j for j in scores if scores[j] > 0), key=lambda j: (-scores[j], j))
        expected = (scored + [j for j in range(n_items) if j not in seen and j not in scored])[:4]
        got = recs[recs.user_idx == u].sort_values("rank")
        assert got.item_idx.tolist() == expected
        assert got.score.tolist()[:len(scored)] == pytest.approx(
            [sum(expected_sim.get((h, j), 0.0) for h in seen) for j in expected[:len(scored)]])


def test_popularity_percentile_equals_percent_rank(spark: SparkSession) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from recsys.evaluation.data import POP_PCT

    catalog = spark.range(50).select(F.col("id").cast("int").alias("item_idx"))
    fit = spark.range(400).select((F.col("id") % 37).cast("int").alias("item_idx"),
                                  (F.col("id") % 13).cast("int").alias("user_idx"))
    got = {r.item_idx: r[POP_PCT] for r in item_stats(catalog, fit, None).collect()}
    counts = fit.groupBy("item_idx").agg(F.countDistinct("user_idx").alias("n"))
    ref = catalog.join(counts, "item_idx", "left").fillna(0)
    expected = {r.item_idx: r.p for r in ref.select("item_idx", F.percent_rank().over(Window.orderBy("n")).alias("p"))
                .collect()}
    assert got == pytest.approx(expected)
