"""recsys.prepare transforms on hand-made data: splits, histories, truth, user histories, no future leaks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from recsys.config import AppConfig, ConfigError, load_config
from recsys.lakehouse.write_checks import nullable
from recsys.prepare import examples, split
from recsys.prepare.settings import PrepareConfig, SplitConfig
from recsys.prepare.split import ROLE_TEST, ROLE_VALIDATION
from recsys.schemas import INTERACTIONS, PAD_ITEM, TRAIN_EXAMPLES, TRUTH, USER_HISTORIES

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
L = 4


def at(minutes: float) -> dt.datetime:
    return BASE + dt.timedelta(minutes=minutes)


def local(value: dt.datetime) -> dt.datetime:
    """How Spark's collect() returns a timestamp (naive, in the Python process's local time)."""
    return dt.datetime.fromtimestamp(value.timestamp())


def interactions_df(spark: SparkSession, events: list[tuple[int, int, dt.datetime, float]]) -> DataFrame:
    """``(user_idx, item_idx, ts, weight)`` events as an ``interactions`` DataFrame."""
    rows = [
        (u, f"user-{u}", i, f"item-{i}", ts, ts.date(), "view" if w > 0 else "dislike", float(w), None,
         "test", "run-1", ts.strftime("%Y-%m"))
        for u, i, ts, w in events
    ]
    return spark.createDataFrame(rows, INTERACTIONS)


def run_split(frame: DataFrame, settings: PrepareConfig) -> DataFrame:
    prepared = split.assign_split(split.positive_interactions(frame), settings.split,
                                  settings.min_user_interactions)
    return examples.with_history(prepared, settings.history_length)


def by_user(frame: DataFrame, *cols: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in cols) for r in frame.collect())


def pad(items: list[int]) -> list[int]:
    return [PAD_ITEM] * (L - len(items)) + items


# user 0: 7 positives (a tie at minute 2: 11 before 12) and a dislike; user 1: exactly 3 positives and a
# dislike after its test item; user 2: 2 positives (train only) and a NaN weight; user 3: a dislike only.
LEAVE_LAST_OUT_EVENTS = [
    (0, 10, at(1), 1.0), (0, 12, at(2), 1.0), (0, 11, at(2), 1.0), (0, 20, at(3), 0.0), (0, 13, at(4), 1.0),
    (0, 14, at(5), 2.0), (0, 15, at(6), 1.0), (0, 16, at(7), 1.0),
    (1, 30, at(1), 1.0), (1, 31, at(2), 1.0), (1, 32, at(3), 1.0), (1, 33, at(4), 0.0),
    (2, 40, at(1), 1.0), (2, 41, at(2), 1.0), (2, 42, at(3), float("nan")),
    (3, 50, at(1), 0.0),
]


@pytest.fixture(scope="module")
def leave_last_out(spark: SparkSession) -> dict[str, list[tuple[Any, ...]]]:
    frame = interactions_df(spark, LEAVE_LAST_OUT_EVENTS)
    settings = PrepareConfig(history_length=L)
    history = run_split(frame, settings)
    train = examples.train_examples(history, settings.min_history, 0)
    val = examples.truth(history, ROLE_VALIDATION)
    test = examples.truth(history, ROLE_TEST)
    users = examples.user_histories(frame, history, L, None)
    assert [nullable(f.schema) for f in (train, val, users)] == [TRAIN_EXAMPLES, TRUTH, USER_HISTORIES]
    return {
        "train": by_user(train, "user_idx", "target_item_idx", "history", "history_len", "ts", "weight"),
        "val": by_user(val, "user_idx", "item_idx", "history", "history_len", "ts"),
        "test": by_user(test, "user_idx", "item_idx", "history", "history_len", "ts"),
        "users": by_user(users, "user_idx", "user_id", "history", "history_len", "seen_items"),
        "counts": by_user(examples.train_counts(history), "item_idx", "train_count"),
    }


def test_leave_last_out_train_examples(leave_last_out: dict[str, list[tuple[Any, ...]]]) -> None:
    assert leave_last_out["train"] == [
        (0, 11, pad([10]), 1, local(at(2)), 1.0),
        (0, 12, pad([10, 11]), 2, local(at(2)), 1.0),   # tie at minute 2 broken by item_idx
        (0, 13, pad([10, 11, 12]), 3, local(at(4)), 1.0),
        (0, 14, [10, 11, 12, 13], 4, local(at(5)), 2.0),
        (2, 41, pad([40]), 1, local(at(2)), 1.0),       # short user: train only
    ]


def test_leave_last_out_truth(leave_last_out: dict[str, list[tuple[Any, ...]]]) -> None:
    assert leave_last_out["val"] == [
        (0, 15, [11, 12, 13, 14], 4, local(at(6))),
        (1, 31, pad([30]), 1, local(at(2))),
    ]
    assert leave_last_out["test"] == [
        (0, 16, [12, 13, 14, 15], 4, local(at(7))),
        (1, 32, pad([30, 31]), 2, local(at(3))),
    ]


def test_leave_last_out_user_histories(leave_last_out: dict[str, list[tuple[Any, ...]]]) -> None:
    assert leave_last_out["users"] == [
        (0, "user-0", [12, 13, 14, 15], 4, [10, 11, 12, 13, 14, 15, 20]),  # the dislike counts as seen
        (1, "user-1", pad([30, 31]), 2, [30, 31]),                         # the dislike after test does not
        (2, "user-2", pad([40, 41]), 2, [40, 41, 42]),
    ]
    assert leave_last_out["counts"] == [(i, 1) for i in (10, 11, 12, 13, 14, 30, 40, 41)]


def day(n: float) -> dt.datetime:
    return dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=n - 1)


def test_time_cutoff_split(spark: SparkSession) -> None:
    events = [
        (0, 1, day(1), 1.0), (0, 2, day(2), 1.0), (0, 3, day(3), 1.0), (0, 4, day(6), 1.0),
        (0, 5, day(7), 1.0), (0, 8, day(9), 0.0), (0, 6, day(10), 1.0), (0, 9, day(11), 0.0),
        (0, 7, day(12), 1.0),
        (1, 1, day(1), 1.0), (1, 2, day(11), 1.0),   # no validation item
        (2, 3, day(12), 1.0),                        # nothing before the cutoffs: no rows
        (3, 5, day(6), 1.0),                         # validation period only
    ]
    frame = interactions_df(spark, events)
    settings = PrepareConfig(history_length=L, split=SplitConfig(
        strategy="time_cutoff", cutoff="2024-01-10", validation_cutoff="2024-01-05T00:00:00Z"))
    history = run_split(frame, settings)
    train = examples.train_examples(history, 1, 0)
    assert by_user(train, "user_idx", "target_item_idx", "history") == [(0, 2, pad([1])), (0, 3, pad([1, 2]))]
    assert by_user(examples.truth(history, ROLE_VALIDATION), "user_idx", "item_idx", "history", "ts") == [
        (0, 4, pad([1, 2, 3]), local(day(6))),
    ]
    assert by_user(examples.truth(history, ROLE_TEST), "user_idx", "item_idx", "history", "history_len") == [
        (0, 6, [2, 3, 4, 5], 4),   # at the cutoff instant: test; validation-period item 5 is history
        (1, 2, pad([1]), 1),
    ]
    _, cutoff = settings.split.cutoffs()
    users = examples.user_histories(frame, history, L, cutoff)
    assert by_user(users, "user_idx", "history", "seen_items") == [
        (0, [2, 3, 4, 5], [1, 2, 3, 4, 5, 8]),
        (1, pad([1]), [1]),
        (3, pad([5]), [5]),
    ]
    assert by_user(examples.train_counts(history), "item_idx", "train_count") == [(1, 2), (2, 1), (3, 1)]


def random_events(seed: int, users: int = 12) -> list[tuple[int, int, dt.datetime, float]]:
    """Distinct items per user, many ties in time, some non-positive weights."""
    rng = random.Random(seed)
    events = []
    for u in range(users):
        n = rng.randint(1, 14)
        for item in rng.sample(range(60), n):
            events.append((u, item, at(rng.randint(0, 8)), rng.choice([1.0, 1.0, 1.0, 2.0, 0.0])))
    return events


def expected_examples(events: list[tuple[int, int, dt.datetime, float]], settings: PrepareConfig,
                      ) -> list[tuple[Any, ...]]:
    """Brute-force reference for leave-last-out train examples."""
    out = []
    for u in sorted({e[0] for e in events}):
        seq = sorted((e for e in events if e[0] == u and e[3] > 0), key=lambda e: (e[2], e[1]))
        train = seq[:-2] if len(seq) >= settings.min_user_interactions else seq
        rows = []
        for k, (_, item, ts, w) in enumerate(train):
            hist = [e[1] for e in train[max(0, k - settings.history_length):k]]
            if len(hist) >= settings.min_history:
                rows.append((u, item, [PAD_ITEM] * (settings.history_length - len(hist)) + hist, len(hist),
                             local(ts), w))
        if settings.max_examples_per_user:
            rows = rows[-settings.max_examples_per_user:]
        out.extend(rows)
    return sorted(out)


@pytest.mark.parametrize("cap", [0, 2])
def test_examples_match_reference_and_never_see_the_future(spark: SparkSession, cap: int) -> None:
    events = random_events(7)
    frame = interactions_df(spark, events)
    settings = PrepareConfig(history_length=L, max_examples_per_user=cap)
    history = run_split(frame, settings)
    train = examples.train_examples(history, settings.min_history, cap)
    cols = ("user_idx", "target_item_idx", "history", "history_len", "ts", "weight")
    assert by_user(train, *cols) == expected_examples(events, settings)
    # Independent check with a join: every history item is an earlier (ts, item_idx) train item of the user.
    train.createOrReplaceTempView("ex")
    history.createOrReplaceTempView("hist")
    truth_items = examples.truth(history, ROLE_VALIDATION).unionByName(examples.truth(history, ROLE_TEST))
    truth_items.createOrReplaceTempView("truth_items")
    bad = spark.sql("""
        WITH h AS (SELECT user_idx, ts, target_item_idx, item AS hist_item
                   FROM ex LATERAL VIEW explode(history) t AS item WHERE item <> -1)
        SELECT h.* FROM h JOIN hist p ON p.user_idx = h.user_idx AND p.item_idx = h.hist_item
        WHERE NOT (p.ts < h.ts OR (p.ts = h.ts AND p.item_idx < h.target_item_idx))
        UNION ALL
        SELECT h.* FROM h JOIN truth_items t ON t.user_idx = h.user_idx AND t.item_idx = h.hist_item
    """)
    assert bad.count() == 0
    padding = spark.sql("SELECT * FROM ex WHERE size(history) <> 4 OR "
                        "size(filter(history, x -> x <> -1)) <> history_len OR "
                        "(history_len < 4 AND history[0] <> -1)")
    assert padding.count() == 0


def test_prepare_config_from_yaml_and_validation(tmp_path: Any) -> None:
    base: AppConfig = load_config("local")
    assert base.prepare.split.strategy == "leave_last_out"
    assert base.prepare.min_user_interactions == 3 and base.prepare.tokenizer == "minilm"
    cfg = load_config("test", ["prepare.split.strategy=time_cutoff", "prepare.split.cutoff=2024-02-01"])
    assert cfg.prepare.split.cutoffs()[1] == dt.datetime(2024, 2, 1)
    with pytest.raises(ConfigError, match="strategy"):
        load_config("test", ["prepare.split.strategy=random"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("test", ["prepare.histroy_length=3"])
    no_cutoff = dataclasses.replace(cfg.prepare, split=SplitConfig(strategy="time_cutoff"))
    with pytest.raises(ValueError, match="cutoff"):
        no_cutoff.validate()
    reversed_cutoffs = SplitConfig(strategy="time_cutoff", cutoff="2024-01-01",
                                   validation_cutoff="2024-02-01")
    with pytest.raises(ValueError, match="must not be after"):
        reversed_cutoffs.cutoffs()
    with pytest.raises(ValueError, match="ISO"):
        SplitConfig(strategy="time_cutoff", cutoff="yesterday").cutoffs()
