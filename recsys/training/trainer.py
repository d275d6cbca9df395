"""The Ray driver: pins table versions, starts (or joins) Ray, runs ``TorchTrainer``, publishes the model."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from pyarrow import fs as pafs

from recsys.lakehouse import Snapshot, TableStore
from recsys.lakehouse.filesystems import resolve_filesystem, without_secrets
from recsys.schemas import Tables
from recsys.training import checkpointing as ck
from recsys.training.encoder import load_tokenizer
from recsys.training.loop import train_loop_per_worker
from recsys.training.petastorm_data import check_shardable
from recsys.training.settings import TrainConfig

log = logging.getLogger(__name__)

INPUT_TABLES = (Tables.TRAIN_EXAMPLES, Tables.ITEM_TOKENS, Tables.VALIDATION_TRUTH)


@dataclass(frozen=True)
class TrainResult:
    model_version: str
    artifact_path: str
    metrics: dict[str, Any]
    data_versions: dict[str, int]


def new_model_version(seed: str = "") -> str:
    now = datetime.now(timezone.utc)
    digest = hashlib.sha1(f"{now.isoformat()}{seed}{os.getpid()}".encode()).hexdigest()[:8]
    return f"m-{now.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)), check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe_base_model(tc: TrainConfig) -> str:
    """What the encoder started from, for the artifact and the models table."""
    name = tc.encoder.name_or_path
    if tc.encoder.random_init is not None:
        r = tc.encoder.random_init
        return f"random-init bert h{r.hidden_size} l{r.layers} (tokenizer {name})"
    return name


def ensure_ray(tc: TrainConfig) -> bool:
    """Join ``$RAY_ADDRESS`` when set, else start a local Ray (no dashboard, no usage stats).

    The local Ray's worker processes quiet third-party loggers (:mod:`recsys.training.ray_logging`).

    Returns:
        True when this call started (or joined) Ray, so the caller owns it and should shut it down; False when
        Ray was already initialised by someone else.
    """
    import ray

    from recsys.training.ray_logging import quiet_driver_env

    quiet_driver_env()
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
    else:
        # Ray starts workers at nice 15 by default; on a laptop the training worker then loses the CPU to
        # anything else running (Spark's JVM, the driver). A local Ray is ours alone: normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=tc.local_num_cpus, include_dashboard=False, log_to_driver=True,
                 runtime_env={"worker_process_setup_hook": "recsys.training.ray_logging.quiet_worker_logging"})
    return True


def pin_inputs(store: TableStore, versions: dict[str, int | None] | None = None) -> dict[str, Snapshot]:
    versions = versions or {}
    snaps = {}
    for name in INPUT_TABLES:
        if name == Tables.VALIDATION_TRUTH and not store.exists(name):
            continue
        store.require(name)
        snaps[name] = store.snapshot(name, versions.get(name))
    return snaps


def loop_config(tc: TrainConfig, snaps: dict[str, Snapshot], run_dir: str) -> dict[str, Any]:
    """The ``config`` dict handed to :func:`train_loop_per_worker` (also used by the benchmark)."""
    if tc.strategy == "fsdp" and not tc.use_gpu:
        raise ValueError("train.strategy=fsdp needs train.use_gpu=true (Ray Train's FSDP is GPU-only); "
                         "use strategy ddp on CPU")
    examples = snaps[Tables.TRAIN_EXAMPLES]
    examples.require_files()  # Petastorm reads these files as they are
    if not examples.files:
        raise ValueError("train_examples is empty: run `recsys prepare` first")
    sizes = check_shardable(examples.files, tc.num_workers, examples.storage_options)
    if tc.encoder.trainable_layers != 0 and tc.cache_refresh_steps > 0 \
            and tc.checkpoint_every_steps % tc.cache_refresh_steps:
        log.warning("train.checkpoint_every_steps (%d) is not a multiple of train.cache_refresh_steps (%d): a run "
                    "resumed from a checkpoint recomputes the item cache at another step than the uninterrupted "
                    "run, so it trains other weights", tc.checkpoint_every_steps, tc.cache_refresh_steps)
    tokenizer = load_tokenizer(tc.encoder.name_or_path)
    return {
        "train": tc,
        "train_files": sorted(examples.files),  # Petastorm shards by position: not by the log's order
        # without credentials (Ray may persist its run config): workers use their environment's
        "storage_options": without_secrets(examples.storage_options),
        "num_rows": examples.num_records if examples.num_records is not None else sum(sizes),
        "item_tokens": _shareable(snaps[Tables.ITEM_TOKENS]),
        "validation": _shareable(snaps.get(Tables.VALIDATION_TRUTH)),
        "vocab_size": len(tokenizer),
        "base_model": describe_base_model(tc),
        "run_dir": run_dir,
    }


def _shareable(snap: Snapshot | None) -> Snapshot | None:
    """``snap`` without credentials in its storage options."""
    return None if snap is None else replace(snap, storage_options=without_secrets(snap.storage_options))


def run_trainer(tc: TrainConfig, loop_cfg: dict[str, Any], storage_path: str, name: str,
                storage_options: Mapping[str, str] | None = None) -> Any:
    """Run ``TorchTrainer`` and return Ray's result (its ``checkpoint`` holds the final model files).

    An object-store ``storage_path`` is handed to Ray as our filesystem (Ray's own resolution refuses
    ``s3a://`` and knows nothing of ``storage_options``).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage_filesystem = None
    if "://" in storage_path and not storage_path.startswith("file://"):
        storage_filesystem, storage_path = resolve_filesystem(storage_path, storage_options)

    resources = {"CPU": tc.cpus_per_worker, **({"GPU": 1} if tc.use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=storage_filesystem,
            failure_config=FailureConfig(max_failures=tc.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=max(2, tc.checkpoints_to_keep)),
        ),
    )
    return trainer.fit()


def publish_artifact(checkpoint_dir: str, tc: TrainConfig, dest: str, data_versions: dict[str, int],
                     commit: str, storage_options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Copy the final checkpoint's model files plus tokenizer and provenance to ``dest``."""
    with tempfile.TemporaryDirectory() as staging:
        for name in (ck.CONFIG, ck.ENCODER_CONFIG, ck.WEIGHTS, ck.METRICS):
            with open(os.path.join(checkpoint_dir, name), "rb") as src, \
                    open(os.path.join(staging, name), "wb") as out:
                out.write(src.read())
        load_tokenizer(tc.encoder.name_or_path).save_pretrained(staging)
        with open(os.path.join(staging, "data_versions.json"), "w", encoding="utf-8") as fh:
            json.dump(data_versions, fh, indent=2)
        with open(os.path.join(staging, "git_commit.txt"), "w", encoding="utf-8") as fh:
            fh.write(commit + "\n")
        filesystem, base = resolve_filesystem(dest, storage_options)
        filesystem.create_dir(base, recursive=True)
        for name in sorted(os.listdir(staging)):
            pafs.copy_files(os.path.join(staging, name), f"{base}/{name}",
                            source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)
        with open(os.path.join(checkpoint_dir, ck.METRICS), encoding="utf-8") as fh:
            return dict(json.load(fh))


def train(store: TableStore, tc: TrainConfig, versions: dict[str, int | None] | None = None,
          model_version: str | None = None) -> TrainResult:
    """Train on pinned snapshots of the input tables and publish ``<lakehouse>/models/<version>/``."""
    snaps = pin_inputs(store, versions)
    data_versions = {name: snap.version for name, snap in snaps.items()}
    model_version = model_version or new_model_version(json.dumps(data_versions))
    storage_path = tc.storage_path or f"{store.root}/ray_results"
    run_dir = os.path.join(store.root, "ray_results", model_version) if "://" not in store.root \
        else tempfile.mkdtemp(prefix="recsys-train-")
    cfg = loop_config(tc, snaps, run_dir)
    owns_ray = ensure_ray(tc)
    log.info("training %s on %s (%d rows, %d workers)", model_version, data_versions, cfg["num_rows"],
             tc.num_workers)
    try:
        result = run_trainer(tc, cfg, storage_path, model_version, store.storage.storage_options)
    finally:
        if owns_ray:  # a Ray this job started (or joined) is released with it; one the caller started stays
            import ray

            ray.shutdown()
    if result.error is not None:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    artifact = f"{store.root}/models/{model_version}"
    with result.checkpoint.as_directory() as directory:
        metrics = publish_artifact(directory, tc, artifact, data_versions, git_commit(),
                                   store.storage.storage_options)
    return TrainResult(model_version, artifact, metrics, data_versions)
