"""Spark side of exact top-K: pack users into batches and items into blocks, score every (batch, block).

* Users are packed into rows of ``user_batch_size`` users (vectors, seen items, history as flat binary
  buffers) within their partition, so item data is never copied per user.
* Items are packed into blocks sorted by ``item_idx``. One block: it is broadcast to every batch partition.
  Several blocks (the item matrix is larger than ``broadcast_max_bytes``): batches and blocks are
  cross-joined without broadcast, each task scores its (batch, block) pairs and the per-block top-Ks are
  merged exactly per user afterwards (see :mod:`recsys.scoring.recommend`).
* Executors run :mod:`recsys.scoring.topk` on Arrow buffers (``mapInArrow``): no per-pair Python.

Everything here is a lazy DataFrame transform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.schemas import Col
from recsys.scoring.topk import RaggedInts, explain, topk_scores

HISTORY_VECS = "history_vecs"
SEEN = "seen_items"
EXPL_ITEM = "explanation_item_idx"
EXPL_SIM = "explanation_similarity"

BATCH_SCHEMA = T.StructType([
    T.StructField("batch_id", T.LongType(), False),
    T.StructField("n", T.IntegerType(), False),
    T.StructField("dim", T.IntegerType(), False),
    T.StructField("users", T.BinaryType(), False),
    T.StructField("user_ids", T.ArrayType(T.StringType(), True), False),
    T.StructField("vecs", T.BinaryType(), False),
    T.StructField("seen_len", T.BinaryType(), False),
    T.StructField("seen", T.BinaryType(), False),
    T.StructField("hist_len", T.BinaryType(), False),
    T.StructField("hist", T.BinaryType(), False),
    T.StructField("hist_vecs", T.BinaryType(), False),
])

BLOCK_SCHEMA = T.StructType([
    T.StructField("block_id", T.IntegerType(), False),
    T.StructField("block_n", T.IntegerType(), False),
    T.StructField("block_items", T.BinaryType(), False),
    T.StructField("block_vecs", T.BinaryType(), False),
])

CANDIDATE_SCHEMA = T.StructType([
    T.StructField(Col.USER_IDX, T.IntegerType(), False),
    T.StructField(Col.USER_ID, T.StringType(), True),
    T.StructField(Col.ITEM_IDX, T.IntegerType(), False),
    T.StructField(Col.SCORE, T.FloatType(), False),
    T.StructField(Col.RANK, T.IntegerType(), False),
    T.StructField(EXPL_ITEM, T.IntegerType(), True),
    T.StructField(EXPL_SIM, T.FloatType(), True),
])


@dataclass(frozen=True)
class KernelSpec:
    """What every scoring task needs (pickled to executors)."""

    k: int
    user_batch_size: int = 8192
    chunk_size: int = 65536
    explanation: str = "cosine"  # cosine | dot | none
    blas_threads: int = 0  # 0: leave the BLAS library's default
    block_bytes: int = 16 << 20  # one score matrix (user slab x item chunk, float32) in the kernel


# ---------------------------------------------------------------------------------------------- packing
def _ints(column: pa.Array) -> np.ndarray:
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int32)


def _list_lengths(column: pa.Array) -> np.ndarray:
    return _ints(pc.list_value_length(column))


def _list_values(column: pa.Array) -> np.ndarray:
    return np.asarray(pc.list_flatten(column).fill_null(-1).to_numpy(zero_copy_only=False))


def _pack_batches(batch_size: int, with_history_vecs: bool) -> Callable[[Iterable[pa.RecordBatch]],
                                                                      Iterable[pa.RecordBatch]]:
    def pack(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        partition = ctx.partitionId() if ctx is not None else 0
        counter = 0
        buffer: list[pa.RecordBatch] = []
        buffered = 0
        for incoming in batches:
            buffer.append(incoming)
            buffered += incoming.num_rows
            while buffered >= batch_size:
                table = pa.Table.from_batches(buffer).combine_chunks()
                yield _pack_one(table.slice(0, batch_size), (partition << 32) + counter, with_history_vecs)
                counter += 1
                rest = table.slice(batch_size)
                buffer, buffered = rest.to_batches(), rest.num_rows
        if buffered:
            table = pa.Table.from_batches(buffer).combine_chunks()
            yield _pack_one(table, (partition << 32) + counter, with_history_vecs)

    return pack


def _pack_one(part: pa.Table, batch_id: int, with_history_vecs: bool) -> pa.RecordBatch:
    part = part.combine_chunks()
    n = part.num_rows

    def col(name: str) -> pa.Array:
        chunks = part.column(name).chunks
        return chunks[0] if chunks else pa.array([], part.schema.field(name).type)

    vecs = np.asarray(pc.list_flatten(col(Col.EMBEDDING)).to_numpy(zero_copy_only=False), dtype=np.float32)
    dim = vecs.size // n if n else 0
    seen, hist = col(SEEN), col(Col.HISTORY)
    hist_vecs = b""
    if with_history_vecs:
        hv = pc.list_flatten(pc.list_flatten(col(HISTORY_VECS)))
        hist_vecs = np.asarray(hv.to_numpy(zero_copy_only=False), dtype=np.float32).tobytes()
    values = {
        "batch_id": pa.array([batch_id], pa.int64()), "n": pa.array([n], pa.int32()),
        "dim": pa.array([dim], pa.int32()),
        "users": _binary(_ints(col(Col.USER_IDX))),
        "user_ids": pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), col(Col.USER_ID).cast(pa.string())),
        "vecs": _binary(vecs),
        "seen_len": _binary(_list_lengths(seen)),
        "seen": _binary(_list_values(seen).astype(np.int32)),
        "hist_len": _binary(_list_lengths(hist)),
        "hist": _binary(_list_values(hist).astype(np.int32)),
        "hist_vecs": pa.array([hist_vecs], pa.binary()),
    }
    schema = _arrow(BATCH_SCHEMA)
    return pa.RecordBatch.from_arrays([values[f.name] for f in schema], schema=schema)


def _binary(values: np.ndarray) -> pa.Array:
    return pa.array([values.tobytes()], pa.binary())


def _arrow(schema: T.StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema)


def pack_users(users: DataFrame, batch_size: int, with_history_vecs: bool) -> DataFrame:
    """Users -> one row per batch of up to ``batch_size`` users of the same partition.

    Args:
        users: ``user_idx``, ``user_id``, ``embedding`` (non-null, all the same length), ``seen_items`` and ``history``
            (arrays of item_idx, may be null/empty), and ``history_vecs`` (array of vectors aligned with
            ``history``) when ``with_history_vecs``.
    """
    cols = [Col.USER_IDX, Col.USER_ID, Col.EMBEDDING, SEEN, Col.HISTORY] + ([HISTORY_VECS] if with_history_vecs else [])
    return users.select(*cols).mapInArrow(_pack_batches(batch_size, with_history_vecs), BATCH_SCHEMA)


def _pack_block(table: pa.Table) -> pa.Table:
    table = table.sort_by(Col.ITEM_IDX)
    n = table.num_rows
    items = np.asarray(table.column(Col.ITEM_IDX).to_numpy(), dtype=np.int32)
    emb = table.column(Col.EMBEDDING).combine_chunks()
    vecs = np.asarray(pc.list_flatten(emb).to_numpy(zero_copy_only=False), dtype=np.float32)
    return pa.table({
        "block_id": pa.array([int(table.column("block_id")[0].as_py())], pa.int32()),
        "block_n": pa.array([n], pa.int32()),
        "block_items": pa.array([items.tobytes()], pa.binary()),
        "block_vecs": pa.array([vecs.tobytes()], pa.binary()),
    })


def pack_items(items: DataFrame, block_rows: int) -> DataFrame:
    """Items (``item_idx``, ``embedding``) -> one row per block of ``block_rows`` consecutive item indexes."""
    blocks = items.select(
        (F.col(Col.ITEM_IDX) / F.lit(block_rows)).cast("int").alias("block_id"), Col.ITEM_IDX, Col.EMBEDDING
    )
    return blocks.groupBy("block_id").applyInArrow(_pack_block, BLOCK_SCHEMA)


# ---------------------------------------------------------------------------------------------- scoring
def _decode_rows(row: dict[str, object], dim: int) -> tuple[np.ndarray, ...]:
    ints = np.int32
    users = np.frombuffer(row["users"], dtype=ints)  # type: ignore[call-overload]
    vecs = np.frombuffer(row["vecs"], dtype=np.float32).reshape(-1, dim)  # type: ignore[call-overload]
    seen_len = np.frombuffer(row["seen_len"], dtype=ints)  # type: ignore[call-overload]
    seen = np.frombuffer(row["seen"], dtype=ints)  # type: ignore[call-overload]
    hist_len = np.frombuffer(row["hist_len"], dtype=ints)  # type: ignore[call-overload]
    hist = np.frombuffer(row["hist"], dtype=ints)  # type: ignore[call-overload]
    hist_vecs = np.frombuffer(row["hist_vecs"], dtype=np.float32)  # type: ignore[call-overload]
    return users, vecs, seen_len, seen, hist_len, hist, hist_vecs


def score_pair(row: dict[str, object], spec: KernelSpec, exclude_seen: bool) -> dict[str, np.ndarray]:
    """Top-K of one user batch against one item block, with explanations; the arrays of the output rows."""
    dim = int(row["dim"])  # type: ignore[call-overload]
    users, vecs, seen_len, seen, hist_len, hist, hist_vecs = _decode_rows(row, dim)
    block_items = np.frombuffer(row["block_items"], dtype=np.int32).astype(np.int64)  # type: ignore
    block_vecs = np.frombuffer(row["block_vecs"], dtype=np.float32).reshape(-1, dim)  # type: ignore
    exclude = RaggedInts.from_lengths(seen_len, seen) if exclude_seen else None
    top = topk_scores(vecs, block_vecs, block_items, spec.k, exclude, spec.chunk_size, spec.block_bytes)
    valid = top.valid()
    n, k = top.items.shape
    expl_items = np.full((n, k), -1, dtype=np.int64)
    expl_sims = np.full((n, k), np.nan, dtype=np.float32)
    if spec.explanation != "none" and valid.any() and hist.size:
        rec_pos = np.searchsorted(block_items, np.where(valid, top.items, 0))
        rec_vecs = block_vecs[np.minimum(rec_pos, len(block_items) - 1)]
        history = RaggedInts.from_lengths(hist_len, hist)
        if hist_vecs.size:  # packed with the users (blocked catalog)
            h_vecs = hist_vecs.reshape(-1, dim)
        else:  # the block holds the whole catalog: look the history up in it
            pos = np.searchsorted(block_items, history.values)
            pos_c = np.minimum(pos, len(block_items) - 1)
            found = (pos < len(block_items)) & (block_items[pos_c] == history.values)
            keep_len = np.bincount(history.row_ids()[found], minlength=len(hist_len))
            history = RaggedInts.from_lengths(keep_len, history.values[found])
            h_vecs = block_vecs[pos_c[found]]
        expl_items, expl_sims = _explain_slabs(rec_vecs, np.where(valid, top.items, -2), history, h_vecs,
                                               spec.explanation)
    rows, ranks = np.nonzero(valid)
    user_ids = row["user_ids"]
    if not isinstance(user_ids, pa.Array):
        user_ids = pa.array(user_ids or [], pa.string())
    return {
        Col.USER_IDX: users[rows],
        Col.USER_ID: user_ids.take(pa.array(rows)) if len(user_ids) else pa.nulls(rows.size, pa.string()),
        Col.ITEM_IDX: top.items[rows, ranks].astype(np.int32),
        Col.SCORE: top.scores[rows, ranks],
        Col.RANK: (ranks + 1).astype(np.int32),
        EXPL_ITEM: expl_items[rows, ranks],
        EXPL_SIM: expl_sims[rows, ranks],
    }


def _explain_slabs(rec_vecs: np.ndarray, rec_items: np.ndarray, history: RaggedInts, history_vecs: np.ndarray,
                   metric: str, rows_per_slab: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """:func:`explain` over slabs of rows (bounds its ``history x K x d`` temporaries)."""
    n = rec_items.shape[0]
    if n <= rows_per_slab:
        return explain(rec_vecs, rec_items, history, history_vecs, metric)
    parts = []
    for r0 in range(0, n, rows_per_slab):
        r1 = min(n, r0 + rows_per_slab)
        h0, h1 = int(history.offsets[r0]), int(history.offsets[r1])
        parts.append(explain(rec_vecs[r0:r1], rec_items[r0:r1], history.slice(r0, r1), history_vecs[h0:h1], metric))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _rows(batch: pa.RecordBatch) -> Iterator[dict[str, object]]:
    """The rows of ``batch`` without copying binary values (buffers) or list values (Arrow arrays)."""
    columns = [(name, batch.column(name)) for name in batch.schema.names]
    for i in range(batch.num_rows):
        row: dict[str, object] = {}
        for name, column in columns:
            value = column[i]
            if pa.types.is_binary(column.type):
                row[name] = value.as_buffer() if value.is_valid else b""
            elif pa.types.is_list(column.type):
                row[name] = value.values if value.is_valid else None
            else:
                row[name] = value.as_py()
        yield row


def _limit_blas(threads: int) -> None:
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the BLAS default applies
        return
    threadpool_limits(threads)


def _score_batches(spec: KernelSpec, exclude_seen: bool) -> Callable[[Iterable[pa.RecordBatch]],
                                                                   Iterable[pa.RecordBatch]]:
    schema = _arrow(CANDIDATE_SCHEMA)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        _limit_blas(spec.blas_threads)
        for batch in batches:
            for row in _rows(batch):
                out = score_pair(row, spec, exclude_seen)
                expl = out[EXPL_ITEM]
                arrays = [
                    pa.array(out[Col.USER_IDX], pa.int32()), out[Col.USER_ID],
                    pa.array(out[Col.ITEM_IDX], pa.int32()),
                    pa.array(out[Col.SCORE], pa.float32()), pa.array(out[Col.RANK], pa.int32()),
                    pa.array(expl.astype(np.int32), pa.int32(), mask=expl < 0),
                    pa.array(out[EXPL_SIM], pa.float32(), mask=expl < 0),
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return run


def score_blocks(batches: DataFrame, blocks: DataFrame, spec: KernelSpec, exclude_seen: bool,
                 broadcast: bool) -> DataFrame:
    """Per (user batch, item block): the block's top-K per user with explanations (CANDIDATE_SCHEMA)."""
    right = F.broadcast(blocks) if broadcast else blocks.hint("shuffle_replicate_nl")
    pairs = batches.crossJoin(right)
    return pairs.mapInArrow(_score_batches(spec, exclude_seen), CANDIDATE_SCHEMA)
