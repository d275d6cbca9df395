"""Exact, tie-stable top-K of dot-product scores in pure numpy (the executor-side kernel of scoring).

Ranking order everywhere: score descending, then item index ascending. A batch of users is scored in slabs of
rows against item chunks, one ``slab x chunk`` float32 score matrix (a memory budget, small enough to stay in
cache) at a time, never the full ``user x item`` matrix. Per score matrix, one contiguous pass folds each row
into maxima of column groups; the K-th largest group maximum (after a second, tiny fold) is a lower bound of
the row's K-th score, so only the few groups reaching it are inspected and merged exactly into a running
top-K: the selection costs a fraction of the matrix multiply. Seen items are masked with ``-inf`` (scattered
into the score matrix) before selection and never returned.
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

    def slice(self, start: int, stop: int) -> RaggedInts:
        """Rows ``start:stop``."""
        offsets = self.offsets[start:stop + 1]
        return RaggedInts(offsets - offsets[0], self.values[offsets[0]:offsets[-1]])

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
        groups = width // _GROUP
        if width % _GROUP == 0 and groups >= k:
            # Fold the chunk into ``groups`` maxima of _GROUP columns each (one contiguous SIMD pass). The K-th
            # largest of these maxima is a lower bound of the chunk's K-th largest score (the K largest maxima
            # are K distinct entries), so every entry of the chunk's top-K (ties included) reaches it.
            folded = scores.reshape(rows, _GROUP, groups).max(axis=1)
            kth = _kth_bound(folded, k)
            threshold = np.maximum(threshold, kth)
            cand_rows, cand_cols = _above(scores, threshold, folded)
        else:
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


def _kth_bound(folded: np.ndarray, k: int) -> np.ndarray:
    """Per row, a lower bound of the K-th largest of ``folded`` (maxima of disjoint column groups).

    Folds once more (maxima of ``_GROUP`` group maxima, over the leading whole groups) when K of those remain:
    the K-th largest of any K disjoint groups' maxima bounds the K-th largest entry, and partitioning the
    short second fold costs far less than partitioning ``folded``.
    """
    width = folded.shape[1]
    groups = width // _GROUP
    if groups >= 2 * k:
        folded = folded[:, :groups * _GROUP].reshape(-1, _GROUP, groups).max(axis=1)
        width = groups
    return np.partition(folded, width - k, axis=1)[:, width - k]


def _above(scores: np.ndarray, threshold: np.ndarray,
           folded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the entries ``>= threshold`` of their row, in row-major order.

    Reduces the columns to interleaved groups of ``_GROUP`` by their maximum (a contiguous SIMD pass),
    finds the (row, group) pairs whose maximum reaches the threshold, and inspects only those groups: much
    cheaper than ``np.nonzero`` over the full mask when candidates are rare. ``folded``: those group maxima,
    when already computed.
    """
    rows, width = scores.shape
    if width % _GROUP:
        rows_hit, cols_hit = np.nonzero(scores >= threshold[:, None])
        return rows_hit, cols_hit
    stride = width // _GROUP
    if folded is None:
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
    chunk_size: int = 65536,
    block_bytes: int = 16 << 20,
) -> TopK:
    """Exact top-``k`` items by dot product for every row of ``user_vecs``.

    The rows are scored in slabs against item chunks, one ``slab x chunk`` float32 score matrix (at most about
    ``block_bytes``, so that it stays in cache between the multiply and the selection) at a time.

    Args:
        user_vecs: (B, d) float32.
        item_vecs: (N, d) float32.
        item_ids: (N,) int, sorted ascending, unique.
        k: list length (rows with fewer than ``k`` allowed items get fewer; see :meth:`TopK.valid`).
        exclude: per-row item ids never to return (e.g. seen items); ids absent from ``item_ids`` are ignored.
        chunk_size: most items per matrix-multiply chunk.
        block_bytes: memory budget of one score matrix (sets the rows per slab).
    """
    rows = user_vecs.shape[0]
    top = TopK(rows, k)
    n = item_vecs.shape[0]
    if rows == 0 or n == 0:
        return top
    user_vecs = np.ascontiguousarray(user_vecs, dtype=np.float32)
    item_vecs = np.ascontiguousarray(item_vecs, dtype=np.float32)
    bounds = chunk_bounds(n, k, chunk_size)
    widest = max(stop - start for start, stop in bounds)
    slab = max(1, min(rows, block_bytes // (4 * widest)))
    for r0 in range(0, rows, slab):
        r1 = min(rows, r0 + slab)
        part = TopK(r1 - r0, k)
        ex_rows, ex_pos = (None, None) if exclude is None else _positions(exclude.slice(r0, r1), item_ids)
        for start, stop in bounds:
            scores = user_vecs[r0:r1] @ item_vecs[start:stop].T
            if ex_rows is not None and ex_pos is not None:
                lo, hi = np.searchsorted(ex_pos, [start, stop])
                if hi > lo:
                    scores[ex_rows[lo:hi], ex_pos[lo:hi] - start] = -np.inf
            part.push(scores, item_ids[start:stop])
        top.scores[r0:r1] = part.scores
        top.items[r0:r1] = part.items
    return top


def chunk_bounds(n: int, k: int, chunk_size: int) -> list[tuple[int, int]]:
    """Item ranges scored together: at most ``chunk_size`` (rounded up to whole groups) items each.

    Every chunk but the last spans whole groups of ``_GROUP`` columns; a last chunk that does not is split
    into its whole groups and a short tail.
    """
    width = max(_GROUP * k, -(-chunk_size // _GROUP) * _GROUP)
    bounds = []
    for start in range(0, n, width):
        stop = min(n, start + width)
        whole = start + (stop - start) // _GROUP * _GROUP
        if stop - start >= _GROUP * k and whole < stop:
            bounds += [(start, whole), (whole, stop)]
        else:
            bounds.append((start, stop))
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
