"""Saving and restoring the training state (safetensors weights + optimizer/scheduler/progress)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys.training.towers import ModelSpec

WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE = "train_state.pt"
CONFIG = "config.json"
ENCODER_CONFIG = "encoder_config.json"
METRICS = "metrics.json"


def cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_weights(state: dict[str, torch.Tensor], path: str) -> None:
    save_file(cpu_state(state), path)


def load_weights(model: nn.Module, path: str) -> None:
    state = load_file(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"weights at {path} do not fit the model: missing {missing}, unexpected {unexpected}")


def write_model_files(directory: str, spec: ModelSpec, encoder_config: dict[str, Any],
                      state: dict[str, torch.Tensor], extra_config: dict[str, Any] | None = None) -> None:
    """``config.json`` (architecture), ``encoder_config.json`` (Hugging Face config) and the weights."""
    os.makedirs(directory, exist_ok=True)
    config = {"model": asdict(spec), **(extra_config or {})}
    with open(os.path.join(directory, CONFIG), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2, sort_keys=True, default=str)
    with open(os.path.join(directory, ENCODER_CONFIG), "w", encoding="utf-8") as fh:
        json.dump(encoder_config, fh, indent=2, sort_keys=True, default=str)
    save_weights(state, os.path.join(directory, WEIGHTS))


def save_train_state(directory: str, state: dict[str, Any]) -> None:
    torch.save(state, os.path.join(directory, STATE))


def load_train_state(directory: str) -> dict[str, Any]:
    return torch.load(os.path.join(directory, STATE), map_location="cpu", weights_only=False)
