"""Sampled softmax over in-batch + popularity-sampled negatives, with logQ correction and masking."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def sampled_softmax_loss(
    users: Tensor,
    cand_vecs: Tensor,
    target: Tensor,
    candidates: Tensor,
    history: Tensor,
    temperature: float,
    log_q: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of each user's positive among the candidates.

    Args:
        users: ``[B, d]`` user vectors.
        cand_vecs: ``[B + K, d]`` vectors of the candidates: the batch's targets (column i is row i's
            positive) followed by ``K`` sampled negatives.
        target: ``[B]`` positive item indexes; candidates: ``[B + K]`` item indexes of the columns.
        history: ``[B, L]`` history item indexes (padding < 0); these items are masked out of the negatives.
        log_q: ``[B + K]`` log of each candidate's expected count under the sampling (logQ correction).
        weight: optional ``[B]`` example weights.
    """
    b = users.shape[0]
    logits = users @ cand_vecs.t() / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0).to(logits.dtype)
    same_as_positive = candidates.unsqueeze(0) == target.unsqueeze(1)  # duplicates of the positive
    in_history = (history.unsqueeze(2) == candidates.view(1, 1, -1)).any(dim=1)
    mask = same_as_positive | in_history
    diagonal = torch.zeros_like(mask)
    diagonal[:, :b] = torch.eye(b, dtype=torch.bool, device=mask.device)
    mask = mask & ~diagonal
    logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    labels = torch.arange(b, device=users.device)
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    if weight is None:
        return losses.mean()
    w = weight.to(losses.dtype)
    return (losses * w).sum() / w.sum().clamp(min=1e-8)


class NegativeSampler:
    """Samples negatives from item popularity ``count ** power`` and gives each item's log Q."""

    def __init__(self, counts: np.ndarray, power: float, batch_size: int, num_negatives: int,
                 seed: int) -> None:
        counts = np.asarray(counts, dtype=np.float64).clip(min=0)
        if counts.sum() <= 0:
            counts = np.ones_like(counts)
        smoothed = counts ** power
        self.probs = torch.tensor(smoothed / smoothed.sum(), dtype=torch.float64)
        target_probs = counts / counts.sum()
        # Expected occurrences of each item among a step's candidates (in-batch targets + negatives).
        expected = batch_size * target_probs + num_negatives * self.probs.numpy()
        self.log_q = torch.tensor(np.log(np.clip(expected, 1e-12, None)), dtype=torch.float32)
        self.num_negatives = num_negatives
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> Tensor:
        if self.num_negatives <= 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.probs, self.num_negatives, replacement=True, generator=self.generator)
