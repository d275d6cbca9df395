"""Per-user ranking metrics: pure functions of (ranked list, relevant set, K).

``ranked`` is the recommendation list, best first; ``relevant`` the held-out items. Every function returns
0.0 for an empty ``relevant`` set; callers skip such users (they are not evaluated).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

METRICS: tuple[str, ...] = ("hit_rate", "recall", "precision", "ndcg", "mrr", "map")


def _hits(ranked: Sequence[int], relevant: Collection[int], k: int) -> list[bool]:
    return [item in relevant for item in list(ranked)[:k]]


def hit_rate_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 if any relevant item is in the top ``k``."""
    return 1.0 if relevant and any(_hits(ranked, relevant, k)) else 0.0


def recall_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Share of the relevant items found in the top ``k``."""
    return sum(_hits(ranked, relevant, k)) / len(relevant) if relevant else 0.0


def precision_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Relevant items in the top ``k``, divided by ``k`` (a short list still counts ``k`` slots)."""
    return sum(_hits(ranked, relevant, k)) / k if relevant and k > 0 else 0.0


def ndcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Binary-relevance NDCG: DCG with gain 1/log2(rank + 1), divided by the ideal DCG."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(_hits(ranked, relevant, k)) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def mrr_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Reciprocal rank of the first relevant item in the top ``k`` (0 if none)."""
    for i, hit in enumerate(_hits(ranked, relevant, k)):
        if hit:
            return 1.0 / (i + 1)
    return 0.0


def average_precision_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """AP@k: mean of precision@i over the ranks i of the hits, divided by min(|relevant|, k)."""
    if not relevant or k <= 0:
        return 0.0
    found, total = 0, 0.0
    for i, hit in enumerate(_hits(ranked, relevant, k)):
        if hit:
            found += 1
            total += found / (i + 1)
    return total / min(len(relevant), k)


_FUNCTIONS = {
    "hit_rate": hit_rate_at_k, "recall": recall_at_k, "precision": precision_at_k,
    "ndcg": ndcg_at_k, "mrr": mrr_at_k, "map": average_precision_at_k,
}


def user_metrics(ranked: Sequence[int], relevant: Collection[int], ks: Sequence[int],
                 cold_relevant: Collection[int] = ()) -> Mapping[tuple[str, int], float]:
    """All metrics of one user at every K; ``cold_recall`` only when the user has cold relevant items."""
    rel = set(relevant)
    out = {(name, k): fn(ranked, rel, k) for k in ks for name, fn in _FUNCTIONS.items()}
    cold = set(cold_relevant)
    if cold:
        for k in ks:
            out[("cold_recall", k)] = recall_at_k(ranked, cold, k)
    return out
