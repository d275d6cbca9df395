"""The two towers: text(+id) item tower and causal-transformer user tower.

Both return L2-normalised vectors; the recommendation score is their dot product (cosine similarity).
Training divides that score by the temperature before the softmax; ranking is unaffected by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters that define the architecture (saved as ``config.json`` in the artifact)."""

    encoder_hidden: int
    embedding_dim: int
    num_items: int
    hybrid_id_embeddings: bool
    max_text_tokens: int
    max_history: int
    user_layers: int
    user_heads: int
    user_ff_dim: int
    dropout: float
    temperature: float
    base_model: str


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of the token vectors where ``attention_mask`` is 1 (all-zero masks give a zero vector)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ItemTower(nn.Module):
    """Encoder + mean pooling + projection to ``d``, plus a learned id embedding for known items."""

    id_known: Tensor

    def __init__(self, encoder: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        self.proj = nn.Linear(spec.encoder_hidden, spec.embedding_dim)
        self.id_embedding: nn.Embedding | None = None
        if spec.hybrid_id_embeddings:
            self.id_embedding = nn.Embedding(spec.num_items, spec.embedding_dim)
            nn.init.normal_(self.id_embedding.weight, std=0.01)
        # True for items that had training interactions; others (cold) are encoded from text alone.
        self.register_buffer("id_known", torch.zeros(spec.num_items, dtype=torch.bool))

    def pool(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Mean-pooled encoder output ``[B, H]`` (token inputs truncated to ``max_text_tokens``)."""
        t = self.spec.max_text_tokens
        if attention_mask.numel():
            # Drop trailing all-padding columns: the output is the same (padding is masked), the cost is not.
            t = min(t, max(1, int(attention_mask[:, :t].sum(1).max())))
        input_ids, attention_mask = input_ids[:, :t].long(), attention_mask[:, :t].long()
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def from_pooled(self, pooled: Tensor, item_idx: Tensor) -> Tensor:
        """Item vectors ``[B, d]`` from pooled text features; id embeddings only where the item is known."""
        vec = self.proj(pooled.to(self.proj.weight.dtype))
        if self.id_embedding is not None:
            idx = item_idx.long()
            inside = (idx >= 0) & (idx < self.spec.num_items)
            safe = torch.where(inside, idx, torch.zeros_like(idx))
            known = inside & self.id_known[safe]
            vec = vec + self.id_embedding(safe) * known.unsqueeze(-1).to(vec.dtype)
        return F.normalize(vec, dim=-1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, item_idx: Tensor) -> Tensor:
        return self.from_pooled(self.pool(input_ids, attention_mask), item_idx)


class UserTower(nn.Module):
    """Causal transformer over history item vectors; the user vector is the output at the last position."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        d = spec.embedding_dim
        self.spec = spec
        self.pad_vector = nn.Parameter(torch.zeros(d))
        # Position = recency (0 = most recent), so any left-padded history length works.
        self.position = nn.Embedding(spec.max_history, d)
        nn.init.normal_(self.position.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d, spec.user_heads, spec.user_ff_dim, spec.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, spec.user_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, d)

    def attention_mask(self, history_mask: Tensor) -> Tensor:
        """Float mask ``[B*heads, L, L]``: causal, no attention to padding, each position sees itself."""
        b, length = history_mask.shape
        causal = torch.ones(length, length, dtype=torch.bool, device=history_mask.device).tril()
        allowed = causal.unsqueeze(0) & history_mask.unsqueeze(1)
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=history_mask.device).unsqueeze(0)
        mask = torch.zeros(b, length, length, device=history_mask.device)
        mask = mask.masked_fill(~allowed, float("-inf"))
        return mask.repeat_interleave(self.spec.user_heads, dim=0)

    def forward(self, history_vectors: Tensor, history_mask: Tensor) -> Tensor:
        m = self.spec.max_history
        history_vectors, history_mask = history_vectors[:, -m:], history_mask[:, -m:].bool()
        length = history_vectors.shape[1]
        x = history_vectors.to(self.pad_vector.dtype)
        x = torch.where(history_mask.unsqueeze(-1), x, self.pad_vector)
        recency = torch.arange(length - 1, -1, -1, device=x.device)
        x = x + self.position(recency).unsqueeze(0)
        h = self.layers(x, mask=self.attention_mask(history_mask).to(x.dtype))
        return F.normalize(self.out(self.norm(h[:, -1])), dim=-1)
