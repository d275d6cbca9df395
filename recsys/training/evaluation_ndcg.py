"""Validation NDCG@10 by full ranking over all items (used for early stopping)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from recsys.training.item_data import Truth


def ndcg_at_k(scores: Tensor, truth_items: Tensor, exclude: Tensor, k: int = 10) -> Tensor:
    """Per-user NDCG@k of the one held-out item; ``exclude`` ([B, L], <0 = none) items are removed first."""
    scores = scores.float().clone()
    valid = exclude >= 0
    rows = torch.arange(scores.shape[0], device=scores.device).unsqueeze(1).expand_as(exclude)
    scores[rows[valid], exclude[valid]] = float("-inf")
    truth_scores = scores.gather(1, truth_items.unsqueeze(1))
    rank = (scores > truth_scores).sum(1)
    gain = 1.0 / torch.log2(rank.float() + 2.0)
    return torch.where(rank < k, gain, torch.zeros_like(gain))


def evaluate_ndcg(
    item_vectors: Tensor,
    truth: Truth,
    encode_users: Callable[[Tensor, Tensor], Tensor],
    rank: int,
    world_size: int,
    batch_size: int,
    k: int = 10,
) -> tuple[float, float]:
    """Sum of NDCG@k and number of users over this rank's share of the validation users.

    Every rank runs the same number of ``encode_users`` calls (FSDP needs that); callers all-reduce the sums.
    """
    mine = np.arange(rank, len(truth.user_idx), world_size)
    per_rank = math.ceil(len(truth.user_idx) / max(world_size, 1))
    calls = max(1, math.ceil(per_rank / batch_size))
    total, count = 0.0, 0.0
    device = item_vectors.device
    num_items = item_vectors.shape[0]
    for c in range(calls):
        sel = mine[c * batch_size:(c + 1) * batch_size]
        dummy = len(sel) == 0
        if dummy:
            sel = np.arange(min(1, len(truth.user_idx)))
        hist = torch.from_numpy(truth.history[sel]).to(device)
        hist = torch.where(hist < num_items, hist, torch.full_like(hist, -1))
        mask = hist >= 0
        vectors = item_vectors[hist.clamp(min=0)]
        users = encode_users(vectors, mask)
        if dummy or len(sel) == 0:
            continue
        target = torch.from_numpy(truth.item_idx[sel]).to(device)
        ok = (target >= 0) & (target < num_items)
        scores = users.float() @ item_vectors.float().t()
        gains = ndcg_at_k(scores[ok], target[ok], hist[ok], k)
        total += float(gains.sum())
        count += float(len(sel))
    return total, count
