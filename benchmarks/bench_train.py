"""Training throughput: Ray Train + Petastorm vs a plain in-memory loop, and 1 vs 2 workers.

In one run, on the same synthetic Delta tables, model, batch size and number of steps:

(a) Ray Train, one worker, fed by Petastorm from the pinned ``train_examples`` snapshot;
(b) a plain single process over in-memory tensors (no Ray, no Petastorm);
(c) Ray Train with two workers.

Prints samples/s of each, the fraction of step time spent waiting for data, encoder tokens/s and model
FLOP utilisation against the matmul rate measured in this run; the last line is the (a)/(b) time ratio
(target <= 1.15; data wait target < 5%).

    python benchmarks/bench_train.py                 # tiny random encoder, a few minutes on 2 cores
    python benchmarks/bench_train.py --minilm --steps 20 --batch-size 32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from recsys.config import load_config
from recsys.lakehouse import TableStore, read_arrow
from recsys.schemas import Col, Tables
from recsys.spark_session import get_spark
from recsys.training.encoder import build_encoder, encoder_is_trainable, resolve_model_path
from recsys.training.item_data import load_item_tokens
from recsys.training.loop import make_optimizer, make_scheduler, make_spec
from recsys.training.loss import NegativeSampler
from recsys.training.model import RecModel, TrainStep
from recsys.training.petastorm_data import stack_histories
from recsys.training.settings import TrainConfig
from recsys.training.synthetic import SyntheticSpec, write_synthetic_tables
from recsys.training.trainer import ensure_ray, loop_config, pin_inputs, run_trainer


def matmul_flops(threads: int, n: int = 1024, repeats: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def encoder_params(model: RecModel) -> tuple[int, int]:
    """(non-embedding encoder parameters, of which trainable)."""
    total = trainable = 0
    for name, p in model.item_tower.encoder.named_parameters():
        if "embeddings" in name:
            continue
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def plain_loop(tc: TrainConfig, cfg: dict[str, Any], steps: int) -> dict[str, float]:
    """(b): the same model/optimiser/loss over in-memory tensors in this process."""
    torch.set_num_threads(tc.cpus_per_worker)
    torch.manual_seed(tc.seed)
    items = load_item_tokens(cfg["item_tokens"], tc.max_text_tokens)
    encoder = build_encoder(tc.encoder, cfg["vocab_size"], tc.seed)
    model = RecModel(encoder, make_spec(tc, encoder, items.num_items, cfg["base_model"]))
    model.item_tower.id_known.copy_(torch.from_numpy(items.train_count > 0))
    trainable = encoder_is_trainable(encoder)
    step_module = TrainStep(model, trainable)
    step_module.token_ids, step_module.token_mask = items.input_ids, items.attention_mask
    sampler = NegativeSampler(items.train_count, tc.negative_power, tc.batch_size, tc.num_negatives, tc.seed)
    step_module.log_q = sampler.log_q
    opt = make_optimizer(model, tc)
    sched = make_scheduler(opt, tc, steps + 5)
    table = read_arrow(cfg["train_snapshot"], [Col.HISTORY, Col.TARGET_ITEM_IDX])
    history = torch.from_numpy(stack_histories(np.array(table.column(Col.HISTORY).to_pylist(), dtype=object)))
    target = torch.from_numpy(np.asarray(table.column(Col.TARGET_ITEM_IDX).to_numpy(), dtype=np.int64))
    def pool_all() -> torch.Tensor:
        with torch.no_grad():
            step_module.eval()
            parts = [step_module("pool", input_ids=items.input_ids[s:s + 256],
                                 attention_mask=items.attention_mask[s:s + 256])
                     for s in range(0, items.num_items, 256)]
            step_module.train()
        return torch.cat(parts)

    step_module.pooled_cache = pool_all()
    rng = np.random.default_rng(tc.seed)
    tokens = 0
    warmup = 5  # excluded from the timing (first-step allocations); (a) includes its own warm-up
    start = time.perf_counter()
    for step in range(-warmup, steps):
        if step == 0:
            start, tokens = time.perf_counter(), 0
        if trainable and tc.cache_refresh_steps > 0 and step and step % tc.cache_refresh_steps == 0:
            step_module.pooled_cache = pool_all()
        idx = torch.from_numpy(rng.integers(0, len(target), tc.batch_size))
        negatives = sampler.sample()
        if trainable:
            uniq = torch.unique(torch.cat([target[idx], negatives]))
            tokens += int(items.attention_mask[uniq, : tc.max_text_tokens].sum())
        loss = step_module("loss", history=history[idx], target=target[idx], negatives=negatives)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    total, train_params = encoder_params(model)
    flops = tokens * (2 * total + 4 * train_params)
    return {"seconds": elapsed, "samples_per_s": steps * tc.batch_size / elapsed,
            "tokens_per_s": tokens / elapsed, "flops_per_s": flops / elapsed}


def ray_run(store: TableStore, tc: TrainConfig, workers: int, name: str) -> dict[str, Any]:
    tc = dataclasses.replace(tc, num_workers=workers)
    snaps = pin_inputs(store)
    cfg = loop_config(tc, snaps, tempfile.mkdtemp(prefix="bench-"))
    result = run_trainer(tc, cfg, f"{store.root}/ray_results", name)
    if result.error is not None:
        raise RuntimeError(result.error)
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as directory, open(os.path.join(directory, "metrics.json")) as fh:
        metrics: dict[str, Any] = json.load(fh)
    return metrics


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minilm", action="store_true", help="pretrained MiniLM (top layer fine-tuned)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--negatives", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker / process")
    parser.add_argument("--skip-two-workers", action="store_true")
    parser.add_argument("--lakehouse", default=None)
    args = parser.parse_args(argv)

    lakehouse = args.lakehouse or tempfile.mkdtemp(prefix="bench-train-")
    overrides = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                 f"train.num_negatives={args.negatives}", "train.eval_every_steps=1000000",
                 "train.checkpoint_every_steps=1000000", f"train.cpus_per_worker={args.threads}",
                 "train.epochs=1000", "train.log_every_steps=1000000", "train.warmup_steps=5"]
    if args.minilm:
        overrides += ["train.encoder.random_init=null", "train.encoder.trainable_layers=1",
                      "train.embedding_dim=64", "train.max_text_tokens=32"]
    config = load_config("test", overrides=overrides, lakehouse=lakehouse)
    tc = config.train
    spark = get_spark(config.spark)
    store = TableStore(spark, config.storage)
    spec = SyntheticSpec(num_items=2000, num_clusters=8, num_users=2000, events_per_user=14,
                         history_length=20, max_tokens=32, cold_items=50)
    write_synthetic_tables(spark, store, resolve_model_path(tc.encoder.name_or_path), spec)
    snaps = pin_inputs(store)
    rows = snaps[Tables.TRAIN_EXAMPLES].num_records
    print(f"data: {rows} training examples, {spec.num_items} items; model: {tc.encoder.name_or_path}"
          f"{' (random init)' if tc.encoder.random_init else ''}; batch {tc.batch_size}, {tc.num_negatives}"
          f" negatives, {args.steps} steps, {args.threads} thread(s) per worker")
    peak = matmul_flops(args.threads)
    print(f"matmul rate ({args.threads} thread(s)): {peak / 1e9:.1f} GFLOP/s")

    cfg = loop_config(tc, snaps, lakehouse)
    cfg["train_snapshot"] = snaps[Tables.TRAIN_EXAMPLES]
    plain = plain_loop(dataclasses.replace(tc, num_workers=1), cfg, args.steps)

    ensure_ray(dataclasses.replace(tc, local_num_cpus=max(2, 2 * args.threads)))
    one = ray_run(store, tc, 1, "bench-1w")
    a_seconds = one["loop_wall_s"]
    print(f"(a) Ray Train 1 worker + Petastorm: {args.steps * tc.batch_size / a_seconds:8.1f} samples/s, "
          f"data wait {100 * one['data_wait_fraction']:.2f}% of step time, loop {a_seconds:.1f}s")
    print(f"(b) plain process, in-memory:       {plain['samples_per_s']:8.1f} samples/s, "
          f"{plain['tokens_per_s']:.0f} encoder tokens/s, MFU {100 * plain['flops_per_s'] / peak:.1f}% "
          f"of matmul, loop {plain['seconds']:.1f}s")
    if not args.skip_two_workers:
        two = ray_run(store, tc, 2, "bench-2w")
        two_rate = args.steps * tc.batch_size * 2 / two["loop_wall_s"]
        print(f"(c) Ray Train 2 workers + Petastorm: {two_rate:8.1f}"
              f" samples/s, data wait {100 * two['data_wait_fraction']:.2f}%, loop {two['loop_wall_s']:.1f}s")
    ratio = a_seconds / plain["seconds"]
    print(f"(a)/(b) time ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
