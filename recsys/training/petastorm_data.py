"""Petastorm feeding of training examples: the only module that touches Petastorm.

Each Ray worker reads only its shard (``cur_shard=rank``, ``shard_count=world_size``) of a pinned
snapshot's live files (never a directory glob). Petastorm shards by Parquet row group, so the files must
have at least ``world_size`` row groups. :class:`ShardBatches` cycles over its shard so every worker can run
exactly the same number of steps, whatever the size of its shard (DDP would hang otherwise).

Each pass over a shard is one epoch of a one-epoch reader, ``reset()`` after it is drained: the ventilator
then starts on an empty queue and shuffles the row groups exactly once per pass, from its seeded random state.
Petastorm's own cycling (``num_epochs=None``) is not reproducible: its ventilator reshuffles the row-group list
every time it polls a full queue at the start of a pass, so the order of the second and later passes depends on
thread timing. With ``reader_workers`` > 1 row groups also arrive in completion order, so only one reader worker gives
the same batches on every run.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from fsspec.spec import AbstractFileSystem

from recsys.lakehouse.filesystems import resolve_paths
from recsys.schemas import PAD_ITEM, Col

log = logging.getLogger(__name__)

# petastorm 0.12 drives pyarrow's legacy dataset API: silence its deprecation noise, not ours.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?$")
warnings.filterwarnings("ignore", message=r".*(legacy|ParquetDataset|schema_fields behavior).*")

TRAIN_COLUMNS = (Col.HISTORY, Col.TARGET_ITEM_IDX)


class ShardingError(ValueError):
    """The data cannot be split into the requested number of worker shards."""


def to_url(path: str) -> str:
    """Petastorm wants URLs: plain absolute paths become ``file://`` URLs."""
    return path if "://" in path else f"file://{path}"


def row_group_sizes(files: Sequence[str], storage_options: Mapping[str, str] | None = None) -> list[int]:
    """Rows of every row group of ``files``, in file order (reads footers only)."""
    sizes: list[int] = []
    if not files:
        return sizes
    filesystem, paths = resolve_paths(files, storage_options)
    for path in paths:
        with filesystem.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
            sizes.extend(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return sizes


def check_shardable(files: Sequence[str], world_size: int,
                    storage_options: Mapping[str, str] | None = None) -> list[int]:
    """Raise :class:`ShardingError` unless there are ``world_size`` row groups or more; return their sizes."""
    sizes = row_group_sizes(files, storage_options)
    if len(sizes) < world_size:
        raise ShardingError(
            f"the training data has {len(sizes)} Parquet row group(s) in {len(files)} file(s) but "
            f"{world_size} workers need at least one each: Petastorm shards by row group. Lower "
            "train.num_workers, or rewrite train_examples with smaller row groups "
            "(storage.row_group_rows) and re-run `recsys prepare`."
        )
    return sizes


def steps_per_epoch(num_rows: int, world_size: int, batch_size: int) -> int:
    """Steps every worker runs per epoch: the snapshot's rows split evenly, in whole batches (at least 1)."""
    return max(1, num_rows // (world_size * batch_size))


def stack_histories(column: Any) -> np.ndarray:
    """Petastorm gives array columns as object arrays of arrays: stack, left-padding ragged rows."""
    rows = [np.asarray(r if r is not None else [], dtype=np.int64) for r in column]
    length = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(length, 1)), PAD_ITEM, dtype=np.int64)
    for i, r in enumerate(rows):
        if len(r):
            out[i, length - len(r):] = r
    return out


def open_reader(files: Sequence[str], cur_shard: int | None, shard_count: int | None,
                columns: Sequence[str] = TRAIN_COLUMNS, num_epochs: int | None = None, seed: int = 0,
                shuffle: bool = True, workers_count: int = 1,
                storage_options: Mapping[str, str] | None = None) -> Any:
    """A Petastorm batch reader over exactly ``files`` (one shard of them when ``shard_count`` is set).

    ``storage_options``: object-store settings of the files (as :func:`resolve_filesystem` takes them).
    """
    from petastorm import make_batch_reader

    urls, filesystem = _petastorm_source([to_url(f) for f in files], storage_options)
    return make_batch_reader(
        urls, schema_fields=list(columns), cur_shard=cur_shard,
        shard_count=shard_count, shuffle_row_groups=shuffle, seed=seed, num_epochs=num_epochs,
        workers_count=workers_count, reader_pool_type="thread", filesystem=filesystem,
    )


def _petastorm_source(urls: list[str], storage_options: Mapping[str, str] | None) -> tuple[list[str], Any]:
    """The URLs and filesystem to hand Petastorm 0.12: its own for local and HDFS files, ours for object stores.

    Petastorm resolves other URLs to fsspec filesystems, which pyarrow 14's ``ParquetDataset`` sends to its new
    Dataset API, and that refuses Petastorm's arguments (``validate_schema``); it picks the legacy reader
    Petastorm was written for only for a legacy ``pyarrow.filesystem`` instance. So: our pyarrow filesystem
    (``s3a://`` and storage options understood) behind fsspec's wrapper, behind the legacy wrapper; the URLs
    are rewritten to a scheme of ours whose only job is to give Petastorm each file's path in that filesystem
    (for ``s3://`` it would ask fsspec, which wants s3fs installed just to strip the scheme).
    """
    if not urls or urls[0].startswith(("file://", "hdfs://")):
        return urls, None
    import fsspec
    from fsspec.implementations.arrow import ArrowFSWrapper

    filesystem, paths = resolve_paths(urls, storage_options)
    fsspec.register_implementation(_PATH_SCHEME, _PathOnly, clobber=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the legacy wrappers are deprecated; Petastorm needs them
        from pyarrow.filesystem import DaskFileSystem

        class FsspecLegacyFilesystem(DaskFileSystem):
            """The legacy wrapper with the two calls its base leaves out, answered by fsspec."""

            def isdir(self, path: str) -> bool:
                return bool(self.fs.isdir(path))

            def isfile(self, path: str) -> bool:
                return bool(self.fs.isfile(path))

        return [f"{_PATH_SCHEME}://{p}" for p in paths], FsspecLegacyFilesystem(ArrowFSWrapper(filesystem))


_PATH_SCHEME = "recsys-fs"


class _PathOnly(AbstractFileSystem):
    """fsspec class of :data:`_PATH_SCHEME`: Petastorm only strips the scheme with it (never instantiated)."""

    protocol = _PATH_SCHEME


def read_shard(files: Sequence[str], cur_shard: int, shard_count: int, columns: Sequence[str] = TRAIN_COLUMNS,
               storage_options: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """One pass over one shard, concatenated (tests and small data)."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    with open_reader(files, cur_shard, shard_count, columns, num_epochs=1, shuffle=False,
                     storage_options=storage_options) as reader:
        for batch in reader:
            for c in columns:
                value = getattr(batch, c)
                parts[c].append(stack_histories(value) if value.dtype == object else np.asarray(value))
    out: dict[str, np.ndarray] = {}
    for c, chunks in parts.items():
        if not chunks:
            out[c] = np.zeros(0)
        elif chunks[0].ndim == 2:
            width = max(x.shape[1] for x in chunks)
            out[c] = np.concatenate([_left_pad(x, width) for x in chunks])
        else:
            out[c] = np.concatenate(chunks)
    return out


def _left_pad(x: np.ndarray, width: int) -> np.ndarray:
    if x.shape[1] == width:
        return x
    pad = np.full((x.shape[0], width - x.shape[1]), PAD_ITEM, dtype=x.dtype)
    return np.concatenate([pad, x], axis=1)


@dataclass
class Batch:
    history: np.ndarray  # [B, L] int64, PAD_ITEM left padding
    target: np.ndarray  # [B] int64


@dataclass
class ShardBatches:
    """Fixed-size, shuffled batches from one worker's shard, cycling forever; times the waits for data."""

    files: Sequence[str]
    rank: int
    world_size: int
    batch_size: int
    seed: int = 0
    shuffle_buffer_rows: int = 4096
    reader_workers: int = 1
    storage_options: Mapping[str, str] = field(default_factory=dict)
    wait_seconds: float = 0.0
    _reader: Any = None
    _buffer: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _rows: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed + 7919 * self.rank)

    def __enter__(self) -> ShardBatches:
        self._reader = open_reader(self.files, self.rank, self.world_size, num_epochs=1, seed=self.seed,
                                   workers_count=self.reader_workers, storage_options=self.storage_options)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader.join()
            self._reader = None

    def _next_chunk(self) -> Any:
        """The next row group of the shard, starting the next pass at the end of one."""
        try:
            return next(self._reader)
        except StopIteration:
            self._reader.reset()  # drained: the next pass, in the next order of the seeded shuffle
        try:
            return next(self._reader)
        except StopIteration:
            raise ShardingError(f"shard {self.rank} of {self.world_size} yielded no rows in a whole pass") from None

    def _fill(self, rows: int) -> None:
        while self._rows < rows:
            chunk = self._next_chunk()
            hist = stack_histories(chunk.history)
            target = np.asarray(chunk.target_item_idx, dtype=np.int64)
            self._buffer.append((hist, target))
            self._rows += len(target)

    def next_batch(self) -> Batch:
        start = time.perf_counter()
        self._fill(max(self.batch_size, self.shuffle_buffer_rows))
        width = max(h.shape[1] for h, _ in self._buffer)
        hist = np.concatenate([_left_pad(h, width) for h, _ in self._buffer])
        target = np.concatenate([t for _, t in self._buffer])
        order = self._rng.permutation(len(target))
        take, keep = order[: self.batch_size], order[self.batch_size:]
        self._buffer = [(hist[keep], target[keep])] if len(keep) else []
        self._rows = len(keep)
        self.wait_seconds += time.perf_counter() - start
        return Batch(hist[take], target[take])

    def skip(self, batches: int) -> None:
        """Draw and drop ``batches`` batches (a resumed run continues the same sequence of batches)."""
        for _ in range(batches):
            self.next_batch()

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()
