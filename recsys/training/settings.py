"""Config section ``train`` (conf/base/train.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class RandomInitConfig:
    """A small randomly initialised BERT encoder instead of pretrained weights (tests, benchmarks).

    The tokenizer still comes from ``encoder.name_or_path``; its vocabulary size sizes the embeddings.
    """

    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    intermediate_size: int = 64
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class EncoderConfig:
    """The item tower's text encoder."""

    # "minilm" (the bundled all-MiniLM-L6-v2, offline), a local directory or a Hugging Face hub name.
    name_or_path: str = "minilm"
    # When set, the encoder is built from this config with random weights (no download, no pretrained file).
    random_init: RandomInitConfig | None = None
    # How much of the encoder is fine-tuned: -1 = all layers (and embeddings), 0 = none (frozen encoder,
    # only projection / id embeddings / user tower learn), n = the top n transformer layers.
    trainable_layers: int = 1


@dataclass(frozen=True)
class TrainConfig:
    """Model and training settings (see conf/base/train.yaml for the meaning of each key)."""

    # ---- Ray / distribution
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    # CPUs of the local Ray started when RAY_ADDRESS is unset (None: all of this machine).
    local_num_cpus: int | None = None
    strategy: Literal["ddp", "fsdp"] = "ddp"
    # Where Ray Train keeps checkpoints (None: <lakehouse>/ray_results).
    storage_path: str | None = None
    max_failures: int = 1
    # ---- model
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    embedding_dim: int = 128
    max_text_tokens: int = 48
    hybrid_id_embeddings: bool = True
    max_history: int = 50
    user_layers: int = 2
    user_heads: int = 2
    user_ff_dim: int = 256
    dropout: float = 0.1
    # ---- loss
    temperature: float = 0.05
    num_negatives: int = 256
    negative_power: float = 0.75
    logq_correction: bool = True
    # ---- optimisation
    batch_size: int = 128
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float = 1.0e-3
    encoder_learning_rate: float = 5.0e-5
    weight_decay: float = 0.01
    warmup_steps: int = 20
    schedule: Literal["linear", "cosine"] = "cosine"
    grad_clip: float = 1.0
    seed: int = 42
    # History vectors come from a no-grad cache of the item tower's pooled encoder output, refreshed every
    # this many steps; 0 = encode history items directly (no grad) every step.
    cache_refresh_steps: int = 100
    # ---- data feeding (Petastorm)
    reader_workers: int = 1
    shuffle_buffer_rows: int = 4096
    # ---- checkpoints, evaluation, early stopping
    checkpoint_every_steps: int = 200
    checkpoints_to_keep: int = 2
    eval_every_steps: int = 200
    val_max_users: int = 2000
    eval_batch_size: int = 256
    early_stopping_patience: int = 3
    log_every_steps: int = 20
    # Testing only: the rank 0 worker raises once after this step (to exercise failure recovery).
    fail_once_at_step: int | None = None
