"""``train_loop_per_worker(config)``: the code every Ray Train worker runs (the documented seam).

``config`` keys (built by :mod:`recsys.training.trainer`):
    ``train`` (:class:`TrainConfig`), ``train_files`` (live file URIs of the pinned train_examples
    snapshot), ``num_rows`` (its row count), ``item_tokens`` and ``validation`` (:class:`Snapshot`, the
    latter may be None), ``vocab_size``, ``base_model`` (resolved encoder path/name), ``run_dir`` (a
    directory shared by the run's workers, for the testing failure marker).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys.training import checkpointing as ck
from recsys.training import distributed_state as ds
from recsys.training.encoder import build_encoder, encoder_is_trainable
from recsys.training.evaluation_ndcg import evaluate_ndcg
from recsys.training.item_data import load_item_tokens, load_truth
from recsys.training.loss import NegativeSampler
from recsys.training.model import RecModel, TrainStep
from recsys.training.petastorm_data import ShardBatches, steps_per_epoch
from recsys.training.ray_logging import quiet_loggers
from recsys.training.settings import TrainConfig
from recsys.training.towers import ModelSpec

log = logging.getLogger("recsys.training")


class InjectedFailure(RuntimeError):
    """Raised once by ``fail_once_at_step`` to test recovery from a dead worker."""


def make_spec(tc: TrainConfig, encoder: nn.Module, num_items: int, base_model: str) -> ModelSpec:
    return ModelSpec(
        encoder_hidden=int(getattr(encoder, "config").hidden_size),  # noqa: B009
        embedding_dim=tc.embedding_dim, num_items=num_items, hybrid_id_embeddings=tc.hybrid_id_embeddings,
        max_text_tokens=tc.max_text_tokens, max_history=tc.max_history, user_layers=tc.user_layers,
        user_heads=tc.user_heads, user_ff_dim=tc.user_ff_dim, dropout=tc.dropout,
        temperature=tc.temperature, base_model=base_model,
    )


def make_optimizer(model: RecModel, tc: TrainConfig) -> torch.optim.Optimizer:
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_encoder = name.startswith("item_tower.encoder.")
        decay = p.ndim >= 2 and "embedding" not in name and "position" not in name
        groups.setdefault((is_encoder, decay), []).append(p)
    params = [
        {"params": ps, "lr": tc.encoder_learning_rate if enc else tc.learning_rate,
         "weight_decay": tc.weight_decay if decay else 0.0}
        for (enc, decay), ps in sorted(groups.items())
    ]
    return torch.optim.AdamW(params)


def make_scheduler(opt: torch.optim.Optimizer, tc: TrainConfig,
                   total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < tc.warmup_steps:
            return (step + 1) / max(1, tc.warmup_steps)
        progress = min(1.0, (step - tc.warmup_steps) / max(1, total - tc.warmup_steps))
        if tc.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def step_seeds(seed: int, rank: int, step: int) -> tuple[int, int]:
    """Seeds of one worker's random draws at one step, (dropout, negatives): functions of the step, so a run
    resumed from a checkpoint draws what the uninterrupted run drew."""
    dropout, negatives = np.random.SeedSequence([seed, rank, step]).generate_state(2)
    return int(dropout), int(negatives)


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(x) for x in t.tolist()]


class Worker:
    """State of one training worker (kept in a class so that the loop reads top to bottom)."""

    def __init__(self, config: dict[str, Any]) -> None:
        import ray.train
        import ray.train.torch

        self.config = config
        self.tc: TrainConfig = config["train"]
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        tc = self.tc
        if not tc.use_gpu:
            torch.set_num_threads(max(1, tc.cpus_per_worker))
        else:  # deterministic cuBLAS: read when its first handle is made, so set before any CUDA work
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed + self.rank)
        self.device = ray.train.torch.get_device() if tc.use_gpu else torch.device("cpu")
        self.items = load_item_tokens(config["item_tokens"], tc.max_text_tokens)
        max_id = int(self.items.input_ids.max()) if self.items.input_ids.numel() else 0
        if max_id >= config["vocab_size"]:
            raise ValueError(f"item_tokens has token id {max_id} >= the encoder's vocabulary "
                             f"({config['vocab_size']}): prepare used another tokenizer than train.encoder")
        encoder = build_encoder(tc.encoder, config["vocab_size"], tc.seed)
        self.encoder_config: dict[str, Any] = getattr(encoder, "config").to_dict()  # noqa: B009
        self.spec = make_spec(tc, encoder, self.items.num_items, config["base_model"])
        torch.manual_seed(tc.seed)
        self.model = RecModel(encoder, self.spec)
        self.model.item_tower.id_known.copy_(torch.from_numpy(self.items.train_count > 0))
        self.trainable_encoder = encoder_is_trainable(encoder)
        self.step_module = TrainStep(self.model, self.trainable_encoder)
        self.step_module.token_ids = self.items.input_ids.to(self.device)
        self.step_module.token_mask = self.items.attention_mask.to(self.device)
        self.sampler = NegativeSampler(self.items.train_count, tc.negative_power, tc.batch_size,
                                       tc.num_negatives, tc.seed + 1000 * self.rank)
        if tc.logq_correction:
            self.step_module.log_q = self.sampler.log_q.to(self.device)
        restored = self._restore_weights()  # before wrapping: DDP broadcasts / FSDP shards these weights
        self.wrapped = ray.train.torch.prepare_model(
            self.step_module, parallel_strategy=tc.strategy,
            parallel_strategy_kwargs=ds.strategy_kwargs(tc.strategy))
        self.optimizer = make_optimizer(self.model, tc)
        self.steps_per_epoch = steps_per_epoch(config["num_rows"], self.world, tc.batch_size)
        total = self.steps_per_epoch * tc.epochs
        self.total_steps = min(total, tc.max_steps) if tc.max_steps else total
        self.scheduler = make_scheduler(self.optimizer, tc, self.total_steps)
        self.truth = load_truth(config["validation"], tc.val_max_users, tc.seed) if config.get(
            "validation") else None
        if self.truth is not None and not len(self.truth.user_idx):  # e.g. prepare.split.strategy none
            self.truth = None
            if self.rank == 0:
                log.info("validation_truth is empty: training runs its steps without validation or early stop")
        self.step = 0
        self.loss_curve: list[list[float]] = []
        self.val_curve: list[list[float]] = []
        self.best_ndcg = -1.0
        self.best_step = 0
        self.bad_evals = 0
        self.samples_per_s: list[float] = []
        self.data_wait_s = 0.0
        self.step_time_s = 0.0
        self.loop_wall_s = 0.0
        self.trained_steps = 0
        if restored is not None:
            self._restore_state(restored)

    # ------------------------------------------------------------------ state
    def _restore_weights(self) -> dict[str, Any] | None:
        """Load the latest checkpoint's weights (after a worker failure); return its training state."""
        import ray.train

        self.best_state: dict[str, torch.Tensor] | None = None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            ck.load_weights(self.model, os.path.join(directory, ck.WEIGHTS))
            state = ck.load_train_state(directory)
            best_path = os.path.join(directory, ck.BEST_WEIGHTS)
            if os.path.exists(best_path):
                from safetensors.torch import load_file

                self.best_state = load_file(best_path)
        return state

    def _restore_state(self, state: dict[str, Any]) -> None:
        ds.load_optimizer_state(self.wrapped, self.optimizer, state["optimizer"], self.tc.strategy)
        self.scheduler.load_state_dict(state["scheduler"])
        for key in ("step", "loss_curve", "val_curve", "best_ndcg", "best_step", "bad_evals"):
            setattr(self, key, state[key])
        log.info("rank %d resumed from checkpoint at step %d", self.rank, self.step)

    def _train_state(self, optimizer_state: Any) -> dict[str, Any]:
        return {
            "optimizer": optimizer_state, "scheduler": self.scheduler.state_dict(),
            "step": self.step, "loss_curve": self.loss_curve, "val_curve": self.val_curve,
            "best_ndcg": self.best_ndcg, "best_step": self.best_step, "bad_evals": self.bad_evals,
        }

    def report(self, metrics: dict[str, Any], final: bool = False) -> None:
        """All ranks call this (it is a barrier); rank 0 attaches the checkpoint."""
        import ray.train

        state = ds.full_model_state(self.wrapped, self.model, self.tc.strategy)  # collective under FSDP
        optimizer_state = None if final else ds.full_optimizer_state(self.wrapped, self.optimizer,
                                                                     self.tc.strategy)
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = None
            if self.rank == 0:
                if final:
                    state = self.best_state or state
                    self._write_metrics(directory)
                ck.write_model_files(directory, self.spec, self.encoder_config, state,
                                     {"train": _plain(self.tc)})
                if not final:
                    ck.save_train_state(directory, self._train_state(optimizer_state))
                    if self.best_state is not None:
                        ck.save_weights(self.best_state, os.path.join(directory, ck.BEST_WEIGHTS))
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report({**metrics, "final": int(final)}, checkpoint=checkpoint)

    def _write_metrics(self, directory: str) -> None:
        import json

        sps = self.samples_per_s
        metrics = {
            "loss_curve": self.loss_curve, "val_ndcg_curve": self.val_curve,
            "best_val_ndcg_at_10": self.best_ndcg, "best_step": self.best_step, "steps": self.step,
            "samples_per_s": float(np.median(sps)) if sps else 0.0,
            "data_wait_fraction": self.data_wait_s / self.step_time_s if self.step_time_s else 0.0,
            "world_size": self.world, "steps_per_epoch": self.steps_per_epoch,
            "step_time_s": self.step_time_s, "data_wait_s": self.data_wait_s, "loop_wall_s": self.loop_wall_s,
            "trained_steps_this_attempt": self.trained_steps,
            "final_loss": self.loss_curve[-1][1] if self.loss_curve else None,
        }
        with open(os.path.join(directory, ck.METRICS), "w", encoding="utf-8") as fh:
            json.dump(metrics, fh, indent=2)

    # ------------------------------------------------------------------ computations
    def autocast(self) -> AbstractContextManager[Any]:
        if self.tc.use_gpu and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def pooled_all(self) -> torch.Tensor:
        """Pooled encoder output of every item (every rank makes the same calls)."""
        was_training = self.wrapped.training
        self.wrapped.eval()
        out = []
        bs = self.tc.eval_batch_size
        # Batches of similar text length (see ItemTower.pool: trailing padding columns are dropped).
        order = torch.argsort(self.step_module.token_mask.sum(1), stable=True)
        with self.autocast():
            for start in range(0, self.items.num_items, bs):
                idx = order[start:start + bs]
                out.append(self.wrapped("pool", input_ids=self.step_module.token_ids[idx],
                                        attention_mask=self.step_module.token_mask[idx]).float())
        self.wrapped.train(was_training)
        if not out:
            return torch.zeros(0, self.spec.encoder_hidden, device=self.device)
        pooled = torch.empty(self.items.num_items, out[0].shape[1], device=self.device)
        pooled[order] = torch.cat(out)
        return pooled

    def refresh_cache(self) -> None:
        self.step_module.pooled_cache = self.pooled_all()

    @torch.no_grad()
    def evaluate(self) -> float:
        if self.truth is None:
            return float("nan")
        self.wrapped.eval()
        if self.trainable_encoder or not self.step_module.pooled_cache.numel():
            pooled = self.pooled_all()
        else:
            pooled = self.step_module.pooled_cache
        all_idx = torch.arange(self.items.num_items, device=self.device)
        with self.autocast():
            item_vectors = self.wrapped("items", pooled=pooled, item_idx=all_idx).float()

            def encode(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return self.wrapped("users", history_vectors=vectors, history_mask=mask).float()

            total, count = evaluate_ndcg(item_vectors, self.truth, encode, self.rank, self.world,
                                         self.tc.eval_batch_size)
        self.wrapped.train()
        total, count = _all_reduce_sum([total, count], self.device)
        return total / count if count else float("nan")

    def train_step(self, data: ShardBatches) -> float:
        waited = data.wait_seconds
        start = time.perf_counter()
        batch = data.next_batch()
        dropout_seed, negatives_seed = step_seeds(self.tc.seed, self.rank, self.step)
        torch.manual_seed(dropout_seed)
        self.sampler.generator.manual_seed(negatives_seed)
        history = torch.from_numpy(batch.history).to(self.device)
        target = torch.from_numpy(batch.target).to(self.device)
        negatives = self.sampler.sample().to(self.device)
        with self.autocast():
            loss = self.wrapped("loss", history=history, target=target, negatives=negatives)
        loss.backward()
        ds.clip_gradients(self.wrapped, self.model, self.tc.grad_clip, self.tc.strategy)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        elapsed = time.perf_counter() - start
        self.step_time_s += elapsed
        self.data_wait_s += data.wait_seconds - waited
        self.samples_per_s.append(self.tc.batch_size * self.world / elapsed)
        return value

    # ------------------------------------------------------------------ loop
    def maybe_fail(self) -> None:
        at = self.tc.fail_once_at_step
        if at is None or self.rank != 0 or self.step != at:
            return
        marker = os.path.join(self.config["run_dir"], "injected_failure_done")
        if os.path.exists(marker):
            return
        os.makedirs(self.config["run_dir"], exist_ok=True)
        open(marker, "w").close()
        raise InjectedFailure(f"injected failure after step {self.step} (train.fail_once_at_step)")

    def run(self) -> None:
        tc = self.tc
        use_cache = tc.cache_refresh_steps > 0 or not self.trainable_encoder
        if use_cache:
            self.refresh_cache()
        started, first_step = time.perf_counter(), self.step
        stop = False
        with ShardBatches(self.config["train_files"], self.rank, self.world, tc.batch_size, seed=tc.seed,
                          shuffle_buffer_rows=tc.shuffle_buffer_rows, reader_workers=tc.reader_workers,
                          storage_options=self.config.get("storage_options", {})) as data:
            if self.step:  # resumed: the batches the uninterrupted run would draw next
                skip_started = time.perf_counter()
                data.skip(self.step)
                log.info("rank %d skipped the %d batches trained before the checkpoint in %.1fs", self.rank,
                         self.step, time.perf_counter() - skip_started)
            self.wrapped.train()
            while self.step < self.total_steps and not stop:
                if use_cache and self.trainable_encoder and self.step > first_step \
                        and self.step % tc.cache_refresh_steps == 0:
                    self.refresh_cache()
                loss = self.train_step(data)
                self.step += 1
                self.trained_steps += 1
                self.loss_curve.append([self.step, loss])
                if self.rank == 0 and (self.step % tc.log_every_steps == 0 or self.step == self.total_steps):
                    rate = (self.step - first_step) / (time.perf_counter() - started)
                    log.info("step %d/%d loss %.4f samples/s %.1f data-wait %.1f%% ETA %.0fs", self.step,
                             self.total_steps, loss, self.samples_per_s[-1],
                             100 * self.data_wait_s / max(self.step_time_s, 1e-9),
                             (self.total_steps - self.step) / max(rate, 1e-9))
                metrics: dict[str, Any] = {"step": self.step, "loss": loss}
                if self.step % tc.eval_every_steps == 0 or self.step == self.total_steps:
                    stop = self._eval_and_track(metrics)
                if self.step % tc.checkpoint_every_steps == 0 and self.step < self.total_steps and not stop:
                    self.report(metrics)
                self.maybe_fail()
            self.loop_wall_s = time.perf_counter() - started
        if self.best_state is None or not self.val_curve:
            self.best_state = ck.cpu_state(ds.full_model_state(self.wrapped, self.model, self.tc.strategy))
        self.report({"step": self.step, "best_val_ndcg_at_10": self.best_ndcg}, final=True)

    def _eval_and_track(self, metrics: dict[str, Any]) -> bool:
        ndcg = self.evaluate()
        if math.isnan(ndcg):
            return False
        self.val_curve.append([self.step, ndcg])
        metrics["val_ndcg_at_10"] = ndcg
        if self.rank == 0:
            log.info("step %d validation NDCG@10 %.4f (best %.4f)", self.step, ndcg,
                     max(ndcg, self.best_ndcg))
        if ndcg > self.best_ndcg:
            self.best_ndcg, self.best_step, self.bad_evals = ndcg, self.step, 0
            self.best_state = ck.cpu_state(ds.full_model_state(self.wrapped, self.model, self.tc.strategy))
            return False
        self.bad_evals += 1
        if self.bad_evals >= self.tc.early_stopping_patience:
            if self.rank == 0:
                log.info("early stopping at step %d (no improvement in %d evaluations)", self.step,
                         self.bad_evals)
            return True
        return False


def _plain(tc: TrainConfig) -> dict[str, Any]:
    from recsys.config import to_dict

    return dict(to_dict(tc))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train on this worker's Petastorm shard; rank 0 reports checkpoints and the final model."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_loggers()
    Worker(config).run()
