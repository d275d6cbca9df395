"""`recsys evaluate` on a small planted dataset: every model and baseline, metrics table, report, re-run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from recsys.jobs.evaluate import main as evaluate_main
from recsys.jobs.evaluate import write_metrics
from recsys.lakehouse import TableStore
from recsys.schemas import (
    INTERACTIONS,
    ITEM_EMBEDDINGS,
    ITEM_TOKENS,
    ITEMS,
    PAD_ITEM,
    TRUTH,
    USER_EMBEDDINGS,
    USER_HISTORIES,
    Tables,
)

N_USERS, N_ITEMS, CLUSTERS, PER_USER, COLD = 48, 60, 4, 10, (56, 57, 58, 59)
T0 = dt.datetime(2024, 1, 1)


def _pad(items: list[int], n: int = 8) -> list[int]:
    return [PAD_ITEM] * max(0, n - len(items)) + items[-n:]


def build_dataset(spark: SparkSession, store: TableStore) -> dict[str, object]:
    """Users like items of their cluster (item % 4 == user % 4); the cold items are only ever test items."""
    rng = np.random.default_rng(7)
    inter, val_rows, test_rows, hist_rows = [], [], [], []
    warm = [i for i in range(N_ITEMS) if i not in COLD]
    for u in range(N_USERS):
        c = u % CLUSTERS
        mine = [i for i in warm if i % CLUSTERS == c]
        seq = [int(x) for x in rng.choice(mine, size=PER_USER, replace=False)]
        if u < 8:  # some users' test item is a cold item of their cluster
            seq[-1] = next(i for i in COLD if i % CLUSTERS == c)
        for t, item in enumerate(seq):
            ts = T0 + dt.timedelta(days=u, hours=t)
            inter.append((u, f"u{u}", item, f"m{item}", ts, ts.date(), "rating", 1.0, 4.0, "test", "r1", "2024"))
        ts_val, ts_test = T0 + dt.timedelta(days=u, hours=PER_USER - 2), T0 + dt.timedelta(days=u, hours=PER_USER - 1)
        val_rows.append((u, seq[-2], ts_val, _pad(seq[:-2]), min(8, PER_USER - 2)))
        test_rows.append((u, seq[-1], ts_test, _pad(seq[:-1]), min(8, PER_USER - 1)))
        hist_rows.append((u, f"u{u}", _pad(seq[:-1]), min(8, PER_USER - 1), sorted(seq[:-1])))
    store.write(spark.createDataFrame(inter, INTERACTIONS), Tables.INTERACTIONS)
    store.write(spark.createDataFrame(val_rows, TRUTH), Tables.VALIDATION_TRUTH)
    store.write(spark.createDataFrame(test_rows, TRUTH), Tables.TEST_TRUTH)
    store.write(spark.createDataFrame(hist_rows, USER_HISTORIES), Tables.USER_HISTORIES)
    items: list[tuple[object, ...]] = [(i, f"m{i}", f"Movie {i}", None, ["g"], 2000, [], f"Movie {i}")
                                       for i in range(N_ITEMS)]
    store.write(spark.createDataFrame(items, ITEMS), Tables.ITEMS)
    tokens = [(i, [1], [1], 0 if i in COLD else 5) for i in range(N_ITEMS)]
    store.write(spark.createDataFrame(tokens, ITEM_TOKENS), Tables.ITEM_TOKENS)
    # "our model": cluster one-hots plus noise, so it ranks the user's cluster first (cold items included)
    item_vecs = np.eye(CLUSTERS)[np.arange(N_ITEMS) % CLUSTERS] + rng.normal(0, 0.05, (N_ITEMS, CLUSTERS))
    user_vecs = np.eye(CLUSTERS)[np.arange(N_USERS) % CLUSTERS]
    store.write(spark.createDataFrame(
        [(i, f"m{i}", item_vecs[i].astype(np.float32).tolist(), i in COLD, "v1") for i in range(N_ITEMS)],
        ITEM_EMBEDDINGS), Tables.ITEM_EMBEDDINGS)
    store.write(spark.createDataFrame(
        [(u, f"u{u}", user_vecs[u].astype(np.float32).tolist(), "v1") for u in range(N_USERS)],
        USER_EMBEDDINGS), Tables.USER_EMBEDDINGS)
    return {"test": test_rows}


def test_evaluate_all_models(spark: SparkSession, store: TableStore, lakehouse: Path) -> None:
    build_dataset(spark, store)
    args = ["--env", "test", "--lakehouse", str(lakehouse), "--run-id", "r1", "--log-level", "WARNING"]
    assert evaluate_main(args) == 0
    rows = [r.asDict() for r in store.read(Tables.METRICS).collect()]
    test = {(r["model"], r["metric"], r["k"]): r for r in rows if r["split"] == "test"}
    models = {m for m, _, _ in test}
    assert models == {"ours", "most_popular", "als", "item_knn"}
    for model in models:
        for metric in ("ndcg", "hit_rate", "recall", "mrr", "map", "precision", "coverage",
                       "popularity_percentile", "log_popularity"):
            for k in (5, 10):
                row = test[(model, metric, k)]
                assert row["run_id"] == "r1" and row["users_evaluated"] == N_USERS
                if metric != "log_popularity":
                    assert 0.0 <= row["value"] <= 1.0
    # cold recall: only the 8 users whose test item is cold; only our (content) model can find them
    assert test[("ours", "cold_recall", 10)]["users_evaluated"] == 8
    assert test[("ours", "cold_recall", 10)]["value"] > 0.5
    for baseline in ("most_popular", "als", "item_knn"):
        assert test[(baseline, "cold_recall", 10)]["value"] == 0.0
    assert test[("ours", "hit_rate", 10)]["value"] > test[("most_popular", "hit_rate", 10)]["value"]
    assert test[("item_knn", "hit_rate", 10)]["value"] > test[("most_popular", "hit_rate", 10)]["value"]
    validation = {r["model"] for r in rows if r["split"] == "validation"}
    assert validation == {"als(rank=4,reg=0.01,alpha=1)", "als(rank=4,reg=0.1,alpha=1)"}
    report = lakehouse / "reports" / "r1"
    html = (report / "report.html").read_text()
    assert "<svg" in html and "ndcg@10" in html
    assert "| ours |" in (report / "summary.md").read_text()

    # same run id: replaced. Serving without seen-item exclusion changes nothing here: evaluation always
    # excludes seen items (each user's history is of its own cluster, which our model ranks first)
    assert evaluate_main([*args, "--set", "evaluate.baselines=[most_popular]", "--set", "score.exclude_seen=false",
                          "--set", "evaluate.report=false"]) == 0
    again = [r.asDict() for r in store.read(Tables.METRICS).collect()]
    assert {r["model"] for r in again} == {"ours", "most_popular"}
    ours = {(r["metric"], r["k"], r["split"]): r["value"] for r in rows if r["model"] == "ours"}
    assert {(r["metric"], r["k"], r["split"]): r["value"] for r in again if r["model"] == "ours"} == ours


def test_time_cutoff_baselines_fit_only_before_the_cutoff(spark: SparkSession, store: TableStore,
                                                         lakehouse: Path) -> None:
    """Users with no held-out rows (all their events after the cutoff) must not feed the baselines' fit."""
    cutoff = T0 + dt.timedelta(days=10)

    def row(u: int, item: int, ts: dt.datetime) -> tuple[object, ...]:
        return (u, f"u{u}", item, f"m{item}", ts, ts.date(), "rating", 1.0, 4.0, "test", "r1", "2024")

    before, after = T0 + dt.timedelta(days=1), cutoff + dt.timedelta(days=2)
    inter = [row(u, 0, before) for u in range(6)]  # test users: seen item 0 before the cutoff
    inter += [row(u, 2, before) for u in range(6, 9)]  # item 2: most popular unseen item before the cutoff
    inter += [row(u, 2, cutoff + dt.timedelta(days=1)) for u in range(6)]  # the test items
    inter += [row(u, 3, after) for u in range(10, 20)]  # item 3: popular only after the cutoff
    store.write(spark.createDataFrame(inter, INTERACTIONS), Tables.INTERACTIONS)
    test_rows = [(u, 2, cutoff + dt.timedelta(days=1), _pad([0]), 1) for u in range(6)]
    store.write(spark.createDataFrame(test_rows, TRUTH), Tables.TEST_TRUTH)
    args = ["--env", "test", "--lakehouse", str(lakehouse), "--run-id", "t1", "--log-level", "WARNING",
            "--set", "prepare.split.strategy=time_cutoff", "--set", f"prepare.split.cutoff={cutoff:%Y-%m-%d}",
            "--set", "evaluate.baselines=[most_popular]", "--set", "evaluate.ks=[1]",
            "--set", "evaluate.primary_k=1", "--set", "evaluate.report=false"]
    assert evaluate_main(args) == 0
    got = {(r.metric, r.k): (r.value, r.users_evaluated) for r in store.read(Tables.METRICS).collect()
           if r.model == "most_popular"}
    assert got[("hit_rate", 1)] == (1.0, 6)  # item 2 first, not item 3


def test_write_metrics_replaces_only_its_run(store: TableStore) -> None:
    def rows(value: float) -> pd.DataFrame:
        return pd.DataFrame([{"model": "ours", "metric": "ndcg", "k": 10, "value": value, "split": "test",
                              "users_evaluated": 5}])

    write_metrics(store, rows(0.1), "r1")
    write_metrics(store, rows(0.2), "r2")
    write_metrics(store, rows(0.3), "r1")  # re-running r1 replaces r1 only
    got = sorted((r.run_id, r.value) for r in store.read(Tables.METRICS).collect())
    assert got == [("r1", 0.3), ("r2", 0.2)]
