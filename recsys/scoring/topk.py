"""Exact, tie-stable top-K of dot-product scores in pure numpy (the executor-side kernel of scoring).

Ranking order everywhere: score descending, then item index ascending. A batch of users is scored against
an item matrix chunk by chunk (``user batch x item chunk`` scores in memory at a time, never the full
``user x item`` matrix). A running top-K per user is kept; after the first chunks most scores fall below the
running K-th score and are discarded by one vectorised comparison, so the selection costs little more than
the matrix multiply. Seen items are masked with ``-inf`` before selection and never returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_ITEM = np.iinfo(np.int64).max  # placeholder item of an empty top-K slot (sorts after every real item)
_GROUP = 16  # columns per group in the candidate search (see _above)
_REDUCE_FACTOR = 4  # pre-select per row with np.partition when more than this x K candidates survive


@dataclass(frozen=True)
class RaggedInts:
    """Per-row variable-length int lists in CSR form: row ``r`` is ``values[offsets[r]:offsets[r + 1]]``."""

    offsets: np.ndarray  # int64, length rows + 1
    values: np.ndarray  # int64

    @staticmethod
    def from_lengths(lengths: np.ndarray, values: np.ndarray) -> RaggedInts:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return RaggedInts(offsets, values.astype(np.int64, copy=False))

    @staticmethod
    def empty(rows: int) -> RaggedInts:
        return RaggedInts(np.zeros(rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def row_ids(self) -> np.ndarray:
        """The row of every value."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


class TopK:
    """Running exact top-K per row of a batch, merged chunk by chunk."""

    def __init__(self, rows: int, k: int) -> None:
        self.k = k
        self.scores = np.full((rows, k), -np.inf, dtype=np.float32)
        self.items = np.full((rows, k), NO_ITEM, dtype=np.int64)

    def push(self, scores: np.ndarray, items: np.ndarray) -> None:
        """Offer a chunk: ``scores`` (rows x C) for ``items`` (C,), ascending and larger than any offered before."""
        rows, width = scores.shape
        if width == 0:
            return
        k = self.k
        threshold = self.scores[:, -1]
        cand_rows, cand_cols = _above(scores, threshold)
        if width > k and cand_rows.size > _REDUCE_FACTOR * k * rows:
            # K-th largest of the chunk per row; keep everything >= it (all ties at the boundary stay).
            kth = np.partition(scores, width - k, axis=1)[:, width - k]
            cand_rows, cand_cols = _above(scores, np.maximum(threshold, kth))
        if cand_rows.size:
            self._merge(cand_rows, scores[cand_rows, cand_cols], items[cand_cols])

    def _merge(self, rows: np.ndarray, scores: np.ndarray, items: np.ndarray) -> None:
        """Merge candidates (grouped by row; items larger than every item already held) into the top-K.

        One stable sort on a composite ``(row, score descending)`` key: equal scores keep their input order,
        which is item order, because the held entries come first and every candidate item is larger.
        """
        n, k = self.scores.shape
        all_rows = np.concatenate([np.repeat(np.arange(n, dtype=np.uint64), k), rows.astype(np.uint64)])
        all_scores = np.concatenate([self.scores.ravel(), scores.astype(np.float32, copy=False)])
        all_items = np.concatenate([self.items.ravel(), items.astype(np.int64, copy=False)])
        order = np.argsort((all_rows << np.uint64(32)) | _descending_key(all_scores), kind="stable")
        counts = np.bincount(all_rows.astype(np.int64), minlength=n)
        starts = np.cumsum(counts) - counts
        take = order[starts[:, None] + np.arange(k)]
        self.scores = all_scores[take]
        self.items = all_items[take]

    def valid(self) -> np.ndarray:
        """Mask of the filled slots (rows x K): slots stay empty when a row has fewer than K items."""
        return np.isfinite(self.scores) & (self.items != NO_ITEM)


def _above(scores: np.ndarray, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the entries ``>= threshold`` of their row, in row-major order.

    Reduces the columns to interleaved groups of ``_GROUP`` by their maximum (a contiguous SIMD pass),
    finds the (row, group) pairs whose maximum reaches the threshold, and inspects only those groups: much
    cheaper than ``np.nonzero`` over the full mask when candidates are rare.
    """
    rows, width = scores.shape
    if width % _GROUP:
        rows_hit, cols_hit = np.nonzero(scores >= threshold[:, None])
        return rows_hit, cols_hit
    stride = width // _GROUP
    folded = scores.reshape(rows, _GROUP, stride).max(axis=1)  # group j: columns j, j + stride, ...
    hit_rows, hit_groups = np.nonzero(folded >= threshold[:, None])
    cols = hit_groups[:, None] + np.arange(_GROUP) * stride  # members of each hit group, ascending
    keep = scores[hit_rows[:, None], cols] >= threshold[hit_rows][:, None]
    flat = np.sort((hit_rows[:, None] * width + cols)[keep])  # row-major positions
    return flat // width, flat % width


def _descending_key(scores: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is the descending order of the float32 ``scores``."""
    bits = scores.astype(np.float32, copy=False).view(np.uint32)
    ascending = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return (~ascending).astype(np.uint64)


def topk_scores(
    user_vecs: np.ndarray,
    item_vecs: np.ndarray,
    item_ids: np.ndarray,
    k: int,
    exclude: RaggedInts | None = None,
    chunk_size: int = 8192,
) -> TopK:
    """Exact top-``k`` items by dot product for every row of ``user_vecs``.

    Args:
        user_vecs: (B, d) float32.
        item_vecs: (N, d) float32.
        item_ids: (N,) int, sorted ascending, unique.
        k: list length (rows with fewer than ``k`` allowed items get fewer; see :meth:`TopK.valid`).
        exclude: per-row item ids never to return (e.g. seen items); ids absent from ``item_ids`` are ignored.
        chunk_size: items per matrix-multiply chunk (memory: B x chunk_size float32).
    """
    rows = user_vecs.shape[0]
    top = TopK(rows, k)
    if rows == 0 or item_vecs.shape[0] == 0:
        return top
    ex_rows, ex_pos = _positions(exclude, item_ids) if exclude is not None else (None, None)
    for start, stop in chunk_bounds(item_vecs.shape[0], k, chunk_size):
        scores = user_vecs @ item_vecs[start:stop].T
        if ex_rows is not None and ex_pos is not None:
            lo, hi = np.searchsorted(ex_pos, [start, stop])
            if hi > lo:
                scores[ex_rows[lo:hi], ex_pos[lo:hi] - start] = -np.inf
        top.push(scores, item_ids[start:stop])
    return top


def chunk_bounds(n: int, k: int, chunk_size: int) -> list[tuple[int, int]]:
    """Item ranges scored together: doubling from a few x K up to ``chunk_size``.

    Small first chunks give a good running K-th score cheaply, so that the later (large) chunks keep only a
    handful of candidates per row above it and need no per-row partial sort.
    """
    bounds = []
    start, width = 0, max(4 * k, 64)
    while start < n:
        stop = min(n, start + min(width, chunk_size))
        bounds.append((start, stop))
        start, width = stop, width * 2
    return bounds


def _positions(exclude: RaggedInts, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column position in ``item_ids``) of every excluded item present, sorted by position."""
    rows = exclude.row_ids()
    pos = np.searchsorted(item_ids, exclude.values)
    pos_clipped = np.minimum(pos, max(len(item_ids) - 1, 0))
    present = (pos < len(item_ids)) & (item_ids[pos_clipped] == exclude.values)
    rows, pos = rows[present], pos[present]
    order = np.argsort(pos, kind="stable")
    return rows[order], pos[order]


def explain(
    rec_vecs: np.ndarray,
    rec_items: np.ndarray,
    history: RaggedInts,
    history_vecs: np.ndarray,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """For each recommendation, the row's history item most similar to it.

    Args:
        rec_vecs: (B, K, d) vectors of the recommended items.
        rec_items: (B, K) their ids (a history item equal to the recommendation is never its explanation).
        history: per-row history item ids (B rows).
        history_vecs: (len(history.values), d) vectors of those items, same order.
        metric: ``cosine`` or ``dot``.

    Returns:
        ``(items, sims)``, both (B, K): the explaining item (-1 when the row has no usable history) and the
        similarity (NaN then). Ties go to the earliest history position.
    """
    rows, k = rec_items.shape
    out_items = np.full((rows, k), -1, dtype=np.int64)
    out_sims = np.full((rows, k), np.nan, dtype=np.float32)
    m = history.values.size
    if m == 0 or rows == 0 or k == 0:
        return out_items, out_sims
    rec = rec_vecs.astype(np.float32, copy=False)
    hist = history_vecs.astype(np.float32, copy=False)
    if metric == "cosine":
        rec = rec / np.maximum(np.linalg.norm(rec, axis=2, keepdims=True), 1e-12)
        hist = hist / np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-12)
    hist_rows = history.row_ids()
    sims = np.einsum("mkd,md->mk", rec[hist_rows], hist)  # (M, K)
    sims[history.values[:, None] == rec_items[hist_rows]] = -np.inf
    lengths = np.diff(history.offsets)
    nonempty = np.flatnonzero(lengths > 0)
    starts = history.offsets[nonempty]
    best = np.maximum.reduceat(sims, starts, axis=0)  # (R, K)
    segment = np.repeat(np.arange(nonempty.size), lengths[nonempty])
    position = np.where(sims == best[segment], np.arange(m)[:, None], m)
    first = np.minimum.reduceat(position, starts, axis=0)
    usable = np.isfinite(best)
    picked = history.values[np.minimum(first, m - 1)]
    out_items[nonempty] = np.where(usable, picked, -1)
    out_sims[nonempty] = np.where(usable, best, np.nan).astype(np.float32)
    return out_items, out_sims
