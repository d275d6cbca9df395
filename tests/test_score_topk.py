"""The numpy top-K kernel against a brute-force reference (ties, exclusions, short catalogs)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.scoring.topk import RaggedInts, explain, topk_scores


def brute_force(users: np.ndarray, items: np.ndarray, ids: np.ndarray, k: int,
                seen: list[list[int]]) -> list[list[tuple[int, float]]]:
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    out = []
    for r in range(len(users)):
        row = scores[r].copy()
        row[np.isin(ids, seen[r])] = -np.inf
        order = np.lexsort((ids, -row))
        out.append([(int(ids[c]), float(row[c])) for c in order[:k] if np.isfinite(row[c])])
    return out


def ragged(seen: list[list[int]]) -> RaggedInts:
    lengths = np.array([len(s) for s in seen])
    values = np.array([v for s in seen for v in s], dtype=np.int64)
    return RaggedInts.from_lengths(lengths, values)


@pytest.mark.parametrize(("n_users", "n_items", "k", "chunk", "levels", "block_bytes"), [
    (37, 500, 10, 64, 3, 16 << 20),     # integer vectors in {-1, 0, 1}: many exact ties at the K boundary
    (20, 300, 7, 1000, 2, 16 << 20),    # one chunk (whole groups + a short tail)
    (15, 9, 10, 4, 3, 16 << 20),        # fewer items than K
    (50, 2000, 20, 128, 50, 16 << 20),  # few ties
    (60, 12003, 10, 65536, 3, 16 << 20),  # one wide chunk: two-level fold bound, ties, a tail
    (45, 7000, 5, 3000, 5, 40_000),     # row slabs (a few rows per score matrix) x several chunks
])
def test_topk_equals_brute_force(n_users: int, n_items: int, k: int, chunk: int, levels: int,
                                 block_bytes: int) -> None:
    rng = np.random.default_rng(n_users * 1000 + n_items)
    d = 8
    users = rng.integers(-(levels // 2), levels // 2 + 1, size=(n_users, d)).astype(np.float32)
    items = rng.integers(-(levels // 2), levels // 2 + 1, size=(n_items, d)).astype(np.float32)
    ids = np.sort(rng.choice(10 * n_items, size=n_items, replace=False)).astype(np.int64)
    seen = [[*list(rng.choice(ids, size=rng.integers(0, min(20, n_items)), replace=False)), -5]
            for _ in range(n_users)]
    top = topk_scores(users, items, ids, k, ragged(seen), chunk_size=chunk, block_bytes=block_bytes)
    expected = brute_force(users, items, ids, k, seen)
    valid = top.valid()
    for r in range(n_users):
        got = [(int(i), float(s)) for i, s, v in zip(top.items[r], top.scores[r], valid[r], strict=True) if v]
        assert got == expected[r]
        assert not set(i for i, _ in got) & set(seen[r])


def test_all_ties_pick_smallest_items() -> None:
    users = np.ones((3, 4), np.float32)
    items = np.ones((100, 4), np.float32)
    ids = np.arange(100, dtype=np.int64) * 2
    top = topk_scores(users, items, ids, 5, ragged([[0], [], [2, 4, 6]]), chunk_size=16)
    assert top.items.tolist() == [[2, 4, 6, 8, 10], [0, 2, 4, 6, 8], [0, 8, 10, 12, 14]]


def test_explain_picks_most_similar_history_item() -> None:
    rec_vecs = np.array([[[1, 0], [0, 1]], [[1, 1], [1, 0]]], np.float32)  # (2 users, K=2, d=2)
    rec_items = np.array([[10, 11], [12, 10]])
    history = RaggedInts.from_lengths(np.array([3, 0]), np.array([1, 2, 3]))
    hist_vecs = np.array([[1, 0.1], [0.1, 1], [5, 0]], np.float32)
    items, sims = explain(rec_vecs, rec_items, history, hist_vecs, "cosine")
    assert items[0].tolist() == [3, 2]
    assert sims[0, 0] == pytest.approx(1.0)
    assert sims[0, 1] == pytest.approx(1 / np.hypot(0.1, 1))
    assert items[1].tolist() == [-1, -1] and np.isnan(sims[1]).all()
    items_dot, sims_dot = explain(rec_vecs, rec_items, history, hist_vecs, "dot")
    assert items_dot[0].tolist() == [3, 2] and sims_dot[0, 0] == pytest.approx(5.0)


def test_explain_never_uses_the_item_itself() -> None:
    rec_vecs = np.array([[[1, 0]]], np.float32)
    history = RaggedInts.from_lengths(np.array([2]), np.array([7, 8]))
    items, _ = explain(rec_vecs, np.array([[7]]), history, np.array([[1, 0], [0.5, 0.5]], np.float32))
    assert items.tolist() == [[8]]
