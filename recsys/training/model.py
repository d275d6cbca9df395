"""The two-tower recommender and its training-time wrapper (one ``forward`` per step, as DDP/FSDP need)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from recsys.training.loss import sampled_softmax_loss
from recsys.training.towers import ItemTower, ModelSpec, UserTower

__all__ = ["ModelSpec", "RecModel", "TrainStep"]


class RecModel(nn.Module):
    """Item tower + user tower. Scores are dot products of the (L2-normalised) vectors."""

    def __init__(self, encoder: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.item_tower = ItemTower(encoder, spec)
        self.user_tower = UserTower(spec)

    def encode_items(self, input_ids: Tensor, attention_mask: Tensor, item_idx: Tensor) -> Tensor:
        """``[B, d]`` unit vectors of items from their tokens (and id embedding when the item is known)."""
        return self.item_tower(input_ids, attention_mask, item_idx)

    def encode_users(self, history_vectors: Tensor, history_mask: Tensor) -> Tensor:
        """``[B, d]`` unit user vectors from ``[B, L, d]`` history item vectors (most recent last)."""
        return self.user_tower(history_vectors, history_mask)


class TrainStep(nn.Module):
    """Wraps :class:`RecModel` so that every computation goes through one ``forward`` (DDP/FSDP-safe).

    ``forward(mode="loss", ...)`` is the training loss; ``mode="pool"`` pools item texts (cache refresh,
    no grad); ``mode="items"`` / ``mode="users"`` encode for evaluation.
    """

    def __init__(self, model: RecModel, encoder_trainable: bool) -> None:
        super().__init__()
        self.model = model
        self.encoder_trainable = encoder_trainable
        # Not buffers: DDP would broadcast them every step. Set by the loop.
        self.token_ids: Tensor = torch.zeros(0, 0, dtype=torch.long)
        self.token_mask: Tensor = torch.zeros(0, 0, dtype=torch.long)
        self.pooled_cache: Tensor = torch.zeros(0, 0)
        self.log_q: Tensor = torch.zeros(0)
        self.temperature = model.spec.temperature

    def forward(self, mode: str, **kw: Any) -> Tensor:
        if mode == "loss":
            return self._loss(kw["history"], kw["target"], kw["negatives"], kw.get("weight"))
        tower = self.model.item_tower
        if mode == "pool":
            return tower.pool(kw["input_ids"], kw["attention_mask"])
        if mode == "items":
            return tower.from_pooled(kw["pooled"], kw["item_idx"])
        if mode == "users":
            return self.model.encode_users(kw["history_vectors"], kw["history_mask"])
        raise ValueError(f"unknown mode {mode!r}")

    def _item_vectors(self, items: Tensor, with_grad_encoder: bool) -> Tensor:
        tower = self.model.item_tower
        uniq, inverse = torch.unique(items, return_inverse=True)
        if with_grad_encoder:
            pooled = tower.pool(self.token_ids[uniq], self.token_mask[uniq])
        elif self.pooled_cache.numel():
            pooled = self.pooled_cache[uniq]
        else:
            with torch.no_grad():
                pooled = tower.pool(self.token_ids[uniq], self.token_mask[uniq])
        return tower.from_pooled(pooled, uniq)[inverse]

    def _loss(self, history: Tensor, target: Tensor, negatives: Tensor, weight: Tensor | None) -> Tensor:
        b, length = history.shape
        candidates = torch.cat([target, negatives])
        cand_vecs = self._item_vectors(candidates, with_grad_encoder=self.encoder_trainable)
        hist_mask = history >= 0
        hist_idx = history.clamp(min=0)
        hist_vecs = self._item_vectors(hist_idx.reshape(-1), with_grad_encoder=False).reshape(b, length, -1)
        users = self.model.encode_users(hist_vecs, hist_mask)
        return sampled_softmax_loss(
            users, cand_vecs, target, candidates, history, self.temperature,
            self.log_q[candidates] if self.log_q.numel() else None, weight,
        )
