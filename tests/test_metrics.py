"""Per-user metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest

from recsys.evaluation.metrics import (
    average_precision_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    user_metrics,
)

RANKED = [5, 3, 9, 1, 7]


def test_single_relevant_item() -> None:
    rel = {9}  # at rank 3
    assert hit_rate_at_k(RANKED, rel, 3) == 1.0 and hit_rate_at_k(RANKED, rel, 2) == 0.0
    assert recall_at_k(RANKED, rel, 5) == 1.0
    assert precision_at_k(RANKED, rel, 5) == pytest.approx(0.2)
    assert ndcg_at_k(RANKED, rel, 5) == pytest.approx(1 / math.log2(4))
    assert mrr_at_k(RANKED, rel, 5) == pytest.approx(1 / 3) and mrr_at_k(RANKED, rel, 2) == 0.0
    assert average_precision_at_k(RANKED, rel, 5) == pytest.approx(1 / 3)


def test_several_relevant_items() -> None:
    rel = {3, 1, 42}  # ranks 2 and 4; 42 never recommended
    assert recall_at_k(RANKED, rel, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, rel, 3) == pytest.approx(1 / 3)
    assert precision_at_k(RANKED, rel, 4) == pytest.approx(0.5)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, rel, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, rel, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert mrr_at_k(RANKED, rel, 5) == pytest.approx(0.5)
    assert average_precision_at_k(RANKED, rel, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision_at_k(RANKED, rel, 2) == pytest.approx((1 / 2) / 2)


def test_perfect_and_empty() -> None:
    assert ndcg_at_k([1, 2], {1, 2}, 10) == pytest.approx(1.0)
    assert average_precision_at_k([1, 2], {1, 2}, 10) == pytest.approx(1.0)
    assert precision_at_k([1, 2], {1, 2}, 10) == pytest.approx(0.2)  # short list still has K slots
    for fn in (hit_rate_at_k, recall_at_k, precision_at_k, ndcg_at_k, mrr_at_k, average_precision_at_k):
        assert fn([], {1}, 5) == 0.0
        assert fn([1, 2], set(), 5) == 0.0


def test_user_metrics_with_cold_items() -> None:
    out = user_metrics(RANKED, {9, 100}, [1, 3], cold_relevant={100})
    assert out[("hit_rate", 3)] == 1.0 and out[("hit_rate", 1)] == 0.0
    assert out[("recall", 3)] == pytest.approx(0.5)
    assert out[("cold_recall", 3)] == 0.0
    assert ("cold_recall", 3) not in user_metrics(RANKED, {9}, [3])
