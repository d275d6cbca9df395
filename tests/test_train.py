"""Ray Train end to end: 2 workers on a local Ray, the job's outputs, failure recovery, MiniLM offline."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pyspark.sql import SparkSession

from recsys.config import AppConfig, load_config
from recsys.lakehouse import TableStore
from recsys.schemas import Tables
from recsys.training.artifact import load_model
from recsys.training.encoder import resolve_model_path
from recsys.training.evaluation_ndcg import evaluate_ndcg
from recsys.training.item_data import load_item_tokens, load_truth
from recsys.training.synthetic import SyntheticSpec, write_synthetic_tables
from recsys.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    import ray

    from recsys.training.ray_logging import quiet_driver_env

    quiet_driver_env()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "recsys.training.ray_logging.quiet_worker_logging"})
    yield
    ray.shutdown()


def random_ndcg(num_candidates: int, k: int = 10) -> float:
    return sum(1 / math.log2(r + 2) for r in range(k)) / num_candidates


def test_train_job_two_workers(spark: SparkSession, store: TableStore, lakehouse: Path) -> None:
    from recsys.jobs.train import main

    spec = SyntheticSpec()
    write_synthetic_tables(spark, store, resolve_model_path("minilm"), spec)
    assert main(["--env", "test", "--conf-dir", str(REPO / "conf"), "--lakehouse", str(lakehouse)]) == 0

    rows = store.read(Tables.MODELS).collect()
    assert len(rows) == 1
    row = rows[0]
    assert row.model_version.startswith("m-") and row.embedding_dim == 32
    assert row.data_versions == {"train_examples": 0, "item_tokens": 0, "validation_truth": 0}
    artifact = Path(row.artifact_path)
    for name in ("config.json", "model.safetensors", "metrics.json", "data_versions.json", "git_commit.txt",
                 "tokenizer_config.json", "encoder_config.json"):
        assert (artifact / name).exists(), name
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    losses = [loss for _, loss in metrics["loss_curve"]]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    best = metrics["best_val_ndcg_at_10"]
    assert best > 3 * random_ndcg(spec.num_items - spec.history_length)
    assert row.metrics["best_val_ndcg_at_10"] == pytest.approx(best)

    # the artifact reproduces the model that scored best on validation
    loaded = load_model(str(artifact))
    items = load_item_tokens(store.snapshot(Tables.ITEM_TOKENS), loaded.spec.max_text_tokens)
    item_vectors = loaded.encode_items(items.input_ids, items.attention_mask, torch.arange(items.num_items))
    truth = load_truth(store.snapshot(Tables.VALIDATION_TRUTH), 2000, 0)
    total, count = evaluate_ndcg(item_vectors, truth, loaded.encode_users, 0, 1, 256)
    assert total / count == pytest.approx(best, abs=1e-4)


def test_resumes_after_a_worker_dies(spark: SparkSession, store: TableStore, config: AppConfig,
                                     lakehouse: Path) -> None:
    write_synthetic_tables(spark, store, resolve_model_path("minilm"), SyntheticSpec(num_users=60))
    settings = ["train.max_steps=25", "train.eval_every_steps=25", "train.checkpoint_every_steps=10",
                "train.dropout=0.1"]
    cfg = load_config("test", conf_dir=REPO / "conf", lakehouse=str(lakehouse), overrides=[
        *settings, "train.fail_once_at_step=15", "train.max_failures=1"])
    result = train(store, cfg.train)
    steps = [int(s) for s, _ in result.metrics["loss_curve"]]
    assert steps == list(range(1, 26))  # restored curve up to the step-10 checkpoint, then 11..25 again
    assert result.metrics["steps"] == 25
    assert result.metrics["trained_steps_this_attempt"] == 15
    assert (lakehouse / "ray_results" / result.model_version / "injected_failure_done").exists()

    # the resumed run trained what a run without the failure trains (so two runs on the same tables train the
    # same weights too), past the end of the first pass over each shard
    uninterrupted = train(store, load_config("test", conf_dir=REPO / "conf", lakehouse=str(lakehouse),
                                             overrides=settings).train)
    assert 2 * uninterrupted.metrics["steps_per_epoch"] <= 25
    assert uninterrupted.metrics["loss_curve"] == result.metrics["loss_curve"]
    weights = [(Path(r.artifact_path) / "model.safetensors").read_bytes() for r in (result, uninterrupted)]
    assert weights[0] == weights[1]



@pytest.mark.slow
def test_default_minilm_trains_offline(spark: SparkSession, store: TableStore, lakehouse: Path) -> None:
    write_synthetic_tables(spark, store, resolve_model_path("minilm"), SyntheticSpec(num_users=40))
    cfg = load_config("test", conf_dir=REPO / "conf", lakehouse=str(lakehouse), overrides=[
        "train.encoder.random_init=null", "train.encoder.trainable_layers=1", "train.num_workers=1",
        "train.cpus_per_worker=2", "train.max_steps=3", "train.batch_size=16", "train.num_negatives=16",
        "train.eval_every_steps=3", "train.checkpoint_every_steps=100", "train.cache_refresh_steps=100",
    ])
    result = train(store, cfg.train)
    assert result.metrics["steps"] == 3
    loaded = load_model(result.artifact_path)
    assert loaded.spec.encoder_hidden == 384
    assert loaded.tokenizer is not None
