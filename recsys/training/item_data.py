"""Small tables each worker loads whole (via pyarrow, no Spark): item tokens and validation truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recsys.lakehouse import Snapshot, read_arrow
from recsys.schemas import PAD_ITEM, Col


@dataclass
class ItemTokens:
    """Dense token tensors indexed by ``item_idx`` (items without a row get an empty text)."""

    input_ids: Tensor  # [N, T] long
    attention_mask: Tensor  # [N, T] long
    train_count: np.ndarray  # [N] int64, 0 = cold

    @property
    def num_items(self) -> int:
        return int(self.input_ids.shape[0])


def load_item_tokens(snap: Snapshot, max_tokens: int, num_items: int | None = None) -> ItemTokens:
    table = read_arrow(snap, [Col.ITEM_IDX, Col.INPUT_IDS, Col.ATTENTION_MASK, "train_count"])
    idx = np.asarray(table.column(Col.ITEM_IDX).to_numpy(zero_copy_only=False), dtype=np.int64)
    n = int(max(idx.max() + 1 if len(idx) else 0, num_items or 0))
    ids = np.zeros((n, max_tokens), dtype=np.int64)
    mask = np.zeros((n, max_tokens), dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    id_lists = table.column(Col.INPUT_IDS).to_pylist()
    mask_lists = table.column(Col.ATTENTION_MASK).to_pylist()
    count_list = table.column("train_count").to_pylist()
    for i, toks, m, c in zip(idx, id_lists, mask_lists, count_list, strict=True):
        toks = (toks or [])[:max_tokens]
        m = (m or [1] * len(toks))[:max_tokens]
        ids[i, : len(toks)] = toks
        mask[i, : len(m)] = m
        counts[i] = c or 0
    return ItemTokens(torch.from_numpy(ids), torch.from_numpy(mask), counts)


@dataclass
class Truth:
    """Validation users: held-out item and the history before it."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    history: np.ndarray  # [U, L] PAD_ITEM left-padded


def load_truth(snap: Snapshot, max_users: int, seed: int) -> Truth:
    table = read_arrow(snap, [Col.USER_IDX, Col.ITEM_IDX, Col.HISTORY])
    users = np.asarray(table.column(Col.USER_IDX).to_numpy(zero_copy_only=False), dtype=np.int64)
    items = np.asarray(table.column(Col.ITEM_IDX).to_numpy(zero_copy_only=False), dtype=np.int64)
    histories = table.column(Col.HISTORY).to_pylist()
    order = np.argsort(users, kind="stable")
    if max_users and len(order) > max_users:
        order = np.sort(np.random.default_rng(seed).choice(order, max_users, replace=False))
    rows = [histories[i] or [] for i in order]
    length = max((len(r) for r in rows), default=1) or 1
    hist = np.full((len(rows), length), PAD_ITEM, dtype=np.int64)
    for j, r in enumerate(rows):
        if r:
            hist[j, length - len(r):] = r
    return Truth(users[order], items[order], hist)
