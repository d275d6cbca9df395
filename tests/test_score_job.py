"""`recsys score` end to end on small tables: exact top-K (broadcast and blocked), exclusions, idempotence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession

from recsys.config import load_config
from recsys.jobs.score import main as score_main
from recsys.lakehouse import TableNotFoundError, TableStore
from recsys.schemas import (
    ITEM_EMBEDDINGS,
    MODELS,
    PAD_ITEM,
    USER_EMBEDDINGS,
    USER_HISTORIES,
    Tables,
)
from recsys.scoring.blocks import KernelSpec
from recsys.scoring.recommend import plan_scoring, scoring_users, top_k

N_USERS, N_ITEMS, DIM, K = 40, 150, 6, 10


def build_tables(spark: SparkSession, store: TableStore, seed: int = 3) -> dict[str, np.ndarray | list]:
    """Integer-valued embeddings (exact float arithmetic, many ties), histories, two model versions."""
    rng = np.random.default_rng(seed)
    users = rng.integers(-1, 2, size=(N_USERS, DIM)).astype(np.float32)
    items = rng.integers(-1, 2, size=(N_ITEMS, DIM)).astype(np.float32)
    item_rows = [(i, f"m{i}", items[i].tolist(), False, "v2") for i in range(N_ITEMS)]
    item_rows += [(i, f"m{i}", [9.0] * DIM, False, "v1") for i in range(N_ITEMS)]  # an older model
    store.write(spark.createDataFrame(item_rows, ITEM_EMBEDDINGS), Tables.ITEM_EMBEDDINGS)
    user_rows = [(u, f"u{u}", users[u].tolist(), "v2") for u in range(N_USERS)]
    store.write(spark.createDataFrame(user_rows, USER_EMBEDDINGS), Tables.USER_EMBEDDINGS)
    seen: list[list[int]] = []
    hist_rows = []
    for u in range(N_USERS - 2):  # the last two users have no history at all
        s = sorted(int(x) for x in rng.choice(N_ITEMS, size=int(rng.integers(1, 30)), replace=False))
        seen.append(s)
        history = [PAD_ITEM] * max(0, 8 - len(s)) + s[-8:]
        hist_rows.append((u, f"u{u}", history, min(len(s), 8), s))
    seen += [[], []]
    store.write(spark.createDataFrame(hist_rows, USER_HISTORIES), Tables.USER_HISTORIES)
    created = [dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)]
    models: list[tuple[object, ...]] = [
        (v, c, f"/m/{v}", "base", DIM, {}, {}, "abc", "{}") for v, c in zip(["v1", "v2"], created, strict=True)]
    store.write(spark.createDataFrame(models, MODELS), Tables.MODELS)
    return {"users": users, "items": items, "seen": seen,
            "history": [[h for h in r[2] if h >= 0] for r in hist_rows] + [[], []]}


def expected_topk(data: dict, k: int, excluded: frozenset[int] = frozenset()) -> dict[int, list[tuple[int, float]]]:
    scores = data["users"].astype(np.float64) @ data["items"].astype(np.float64).T
    ids = np.arange(N_ITEMS)
    out = {}
    for u in range(N_USERS):
        row = scores[u].copy()
        row[list(set(data["seen"][u]) | excluded)] = -np.inf
        order = np.lexsort((ids, -row))
        out[u] = [(int(i), float(row[i])) for i in order[:k] if np.isfinite(row[i])]
    return out


@pytest.fixture(scope="module")
def shared(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[TableStore, Path, dict]:
    """One lakehouse with the input tables for every test here; each test writes its own run dates."""
    lakehouse = tmp_path_factory.mktemp("score") / "lakehouse"
    store = TableStore(spark, load_config("test", lakehouse=str(lakehouse)).storage)
    return store, lakehouse, build_tables(spark, store)


def run_score(lakehouse: Path, run_date: dt.date, *extra: str) -> int:
    return score_main(["--env", "test", "--lakehouse", str(lakehouse), "--run-date", run_date.isoformat(),
                       "--log-level", "WARNING", *extra])


def read_recs(store: TableStore, run_date: dt.date | None = None) -> list[dict]:
    rows = [r.asDict() for r in store.read(Tables.RECOMMENDATIONS).collect()]
    return [r for r in rows if run_date is None or r["run_date"] == run_date]


@pytest.mark.parametrize("blocked", [False, True], ids=["broadcast", "blocked"])
def test_score_matches_brute_force(shared: tuple[TableStore, Path, dict], blocked: bool) -> None:
    store, lakehouse, data = shared
    run_date = dt.date(2024, 5, 2 if blocked else 1)
    extra = ["--set", f"score.broadcast_max_bytes={DIM * 4 * 40}"] if blocked else []  # 4 blocks of 40
    assert run_score(lakehouse, run_date, *extra) == 0
    rows = read_recs(store, run_date)
    expected = expected_topk(data, K)
    by_user: dict[int, list[dict]] = {}
    for r in rows:
        by_user.setdefault(r["user_idx"], []).append(r)
    assert set(by_user) == set(range(N_USERS))
    items = data["items"] / np.linalg.norm(data["items"], axis=1, keepdims=True).clip(1e-12)
    for u, recs in by_user.items():
        recs.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in recs] == list(range(1, K + 1))  # every user gets K items
        assert [(r["item_idx"], r["score"]) for r in recs] == expected[u]
        assert not {r["item_idx"] for r in recs} & set(data["seen"][u])  # seen never recommended
        assert all(r["item_id"] == f"m{r['item_idx']}" and r["user_id"] == f"u{u}" for r in recs)
        assert all(r["model_version"] == "v2" for r in recs)  # the newest model by models.created_at
        history = data["history"][u]
        for r in recs:
            if not history:
                assert r["explanation_item_idx"] is None and r["explanation_similarity"] is None
                continue
            sims = items[history] @ items[r["item_idx"]]
            assert r["explanation_similarity"] == pytest.approx(sims.max(), abs=1e-5)
            assert r["explanation_item_idx"] in history
            assert sims[history.index(r["explanation_item_idx"])] == pytest.approx(sims.max(), abs=1e-5)
            assert r["explanation_item_id"] == f"m{r['explanation_item_idx']}"
    if not blocked:  # downstream readers without Spark
        import polars as pl

        from recsys.lakehouse import read_arrow

        frame = read_arrow(store.snapshot(Tables.RECOMMENDATIONS)).to_pandas()  # deltalake log + pyarrow
        assert (frame["run_date"] == run_date).sum() == N_USERS * K
        assert pl.read_delta(store.uri(Tables.RECOMMENDATIONS)).filter(
            pl.col("run_date") == run_date).height == N_USERS * K


def test_rerun_replaces_partition_and_exclusion_table(spark: SparkSession,
                                                      shared: tuple[TableStore, Path, dict]) -> None:
    store, lakehouse, data = shared
    day, other = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
    assert run_score(lakehouse, day) == 0
    first = sorted((r["user_idx"], r["rank"], r["item_idx"], r["score"]) for r in read_recs(store, day))
    unavailable = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    store.write(spark.createDataFrame([(i,) for i in unavailable], "item_idx int"), "unavailable")
    assert run_score(lakehouse, other, "--set", "score.exclude_items_table=unavailable",
                     "--set", "score.explanation=none") == 0
    assert run_score(lakehouse, day) == 0  # same date again: replaced exactly, nothing duplicated
    again = sorted((r["user_idx"], r["rank"], r["item_idx"], r["score"]) for r in read_recs(store, day))
    assert again == first and len(again) == N_USERS * K
    rows = read_recs(store, other)  # the other date is untouched by the re-run
    expected = expected_topk(data, K, frozenset(unavailable))
    got: dict[int, list] = {}
    for r in sorted(rows, key=lambda r: (r["user_idx"], r["rank"])):
        got.setdefault(r["user_idx"], []).append((r["item_idx"], r["score"]))
        assert r["explanation_item_idx"] is None
    assert got == expected


def test_model_version_without_user_embeddings_is_refused(shared: tuple[TableStore, Path, dict]) -> None:
    """v1 has item embeddings but no user embeddings (as after an embed that failed between its two writes):
    scoring it would replace the run date's recommendations with nothing."""
    store, lakehouse, _ = shared
    day = dt.date(2024, 6, 9)
    with pytest.raises(TableNotFoundError, match="'v1' has item embeddings but no user embeddings"):
        run_score(lakehouse, day, "--set", "score.model_version=v1")
    assert not store.exists(Tables.RECOMMENDATIONS) or not read_recs(store, day)


def test_scores_do_not_depend_on_the_order_users_arrive_in(spark: SparkSession) -> None:
    """BLAS rounds a row's dot products differently depending on the other rows of the multiply, so batches
    decide the scores' last bits: users are sorted within their partition before batching, so the same input
    gives the same bits whatever order the shuffle delivers the users in."""
    rng = np.random.default_rng(11)
    n_users, n_items, dim = 61, 150, 32
    users = rng.standard_normal((n_users, dim)).astype(np.float32)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    item_frame = spark.createDataFrame([(i, items[i].tolist()) for i in range(n_items)],
                                       "item_idx int, embedding array<float>")
    user_rows = [(u, f"u{u}", users[u].tolist()) for u in range(n_users)]
    cfg = load_config("test").score
    plan = plan_scoring(n_users, n_items, n_items - 1, dim, cfg, 2)
    spec = KernelSpec(k=5, user_batch_size=4, explanation="none")
    results = []
    for order in (user_rows, user_rows[::-1], user_rows[1::2] + user_rows[::2]):
        frame = spark.createDataFrame(order, "user_idx int, user_id string, embedding array<float>").coalesce(1)
        top = top_k(scoring_users(frame, None), item_frame, plan, spec, exclude_seen=True)
        results.append(sorted((r.user_idx, r.rank, r.item_idx, np.float32(r.score).tobytes()) for r in top.collect()))
    assert results[0] == results[1] == results[2] and len(results[0]) == n_users * 5


@pytest.mark.parametrize("blocked", [False, True], ids=["broadcast", "blocked"])
def test_excluded_items_still_explain(spark: SparkSession, shared: tuple[TableStore, Path, dict],
                                      blocked: bool) -> None:
    """An excluded item is never recommended but stays in the user's history, so it may explain a pick, with
    either scoring plan."""
    store, lakehouse, data = shared
    if not store.exists("no_recs"):
        store.write(spark.createDataFrame([(i,) for i in range(0, N_ITEMS, 2)], "item_idx int"), "no_recs")
    day = dt.date(2024, 7, 2 if blocked else 1)
    extra = ["--set", f"score.broadcast_max_bytes={DIM * 4 * 40}"] if blocked else []
    assert run_score(lakehouse, day, "--set", "score.exclude_items_table=no_recs", *extra) == 0
    items = data["items"] / np.linalg.norm(data["items"], axis=1, keepdims=True).clip(1e-12)
    explained_by_excluded = 0
    for r in read_recs(store, day):
        assert r["item_idx"] % 2 == 1
        history = data["history"][r["user_idx"]]
        if history:
            sims = items[history] @ items[r["item_idx"]]
            assert r["explanation_similarity"] == pytest.approx(sims.max(), abs=1e-5)
            explained_by_excluded += r["explanation_item_idx"] % 2 == 0
    assert explained_by_excluded > 0
