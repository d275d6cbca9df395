"""Small synthetic training tables with learnable structure (tests and benchmarks; no prepare needed).

Items fall into clusters whose text contains the cluster's word; every user interacts within one
cluster, so both the text and the item ids carry signal. The last ``cold_items`` items are never
interacted with (``train_count`` 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pyspark.sql import SparkSession

from recsys.lakehouse import TableStore
from recsys.schemas import PAD_ITEM, SCHEMAS, Tables

CLUSTER_WORDS = ("science", "romance", "horror", "comedy", "history", "sports", "music", "cooking")
FILLER = ("story", "film", "about", "the", "new", "old", "life", "night", "world", "day", "great", "time")


@dataclass(frozen=True)
class SyntheticSpec:
    num_items: int = 200
    num_clusters: int = 5
    num_users: int = 120
    events_per_user: int = 14
    history_length: int = 10
    max_tokens: int = 16
    cold_items: int = 10
    seed: int = 0


def _pad(history: list[int], length: int) -> list[int]:
    history = history[-length:]
    return [PAD_ITEM] * (length - len(history)) + history


def write_synthetic_tables(spark: SparkSession, store: TableStore, tokenizer_path: str,
                           spec: SyntheticSpec = SyntheticSpec()) -> dict[str, int]:
    """Write items, item_tokens, train_examples, validation_truth, test_truth, user_histories."""
    from transformers import AutoTokenizer

    rng = np.random.default_rng(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    warm = spec.num_items - spec.cold_items
    cluster = np.arange(spec.num_items) % spec.num_clusters
    texts = []
    for i in range(spec.num_items):
        words = list(rng.choice(FILLER, 4))
        words.insert(int(rng.integers(0, 4)), CLUSTER_WORDS[cluster[i]])
        texts.append(" ".join(words) + f" {i}")
    base = datetime(2024, 1, 1)
    examples, val, test, hists = [], [], [], []
    counts = np.zeros(spec.num_items, dtype=np.int64)
    for u in range(spec.num_users):
        c = u % spec.num_clusters
        pool = [i for i in range(warm) if cluster[i] == c]
        seq = [int(x) for x in rng.choice(pool, spec.events_per_user, replace=False)]
        train_part = seq[:-2]
        for t in range(1, len(train_part)):
            examples.append((u, _pad(train_part[:t], spec.history_length), min(t, spec.history_length),
                             train_part[t], base + timedelta(hours=u * 100 + t), 1.0))
            counts[train_part[t]] += 1
        counts[train_part[0]] += 1
        ts_val = base + timedelta(hours=u * 100 + 90)
        val.append((u, seq[-2], ts_val, _pad(train_part, spec.history_length),
                    min(len(train_part), spec.history_length)))
        test.append((u, seq[-1], ts_val + timedelta(hours=1), _pad(seq[:-1], spec.history_length),
                     min(len(seq) - 1, spec.history_length)))
        hists.append((u, f"user{u:04d}", _pad(seq[:-1], spec.history_length),
                      min(len(seq) - 1, spec.history_length), seq[:-1]))
    enc = tokenizer(texts, max_length=spec.max_tokens, padding="max_length", truncation=True)
    items: list[tuple[object, ...]] = [
        (i, f"item{i:04d}", f"title {i}", texts[i], [CLUSTER_WORDS[cluster[i]]], 2000, [], texts[i])
        for i in range(spec.num_items)
    ]
    tokens = [(i, list(enc["input_ids"][i]), list(enc["attention_mask"][i]), int(counts[i]))
              for i in range(spec.num_items)]
    tables = {
        Tables.ITEMS: items, Tables.ITEM_TOKENS: tokens, Tables.TRAIN_EXAMPLES: examples,
        Tables.VALIDATION_TRUTH: val, Tables.TEST_TRUTH: test, Tables.USER_HISTORIES: hists,
    }
    versions = {}
    for name, rows in tables.items():
        frame = spark.createDataFrame(rows, SCHEMAS[name])
        if name == Tables.TRAIN_EXAMPLES:
            frame = frame.repartition(2)
        versions[name] = store.write(frame, name, mode="overwrite")
    return versions
