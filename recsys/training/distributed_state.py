"""Full (unsharded) model/optimizer state and gradient clipping for DDP and FSDP alike.

With DDP every rank holds the whole model, so plain ``state_dict()`` calls suffice. With FSDP the
parameters are sharded: the full state is gathered with ``torch.distributed.checkpoint.state_dict``, a
collective that every rank must call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PREFIX = "model."  # the RecModel inside TrainStep


def _options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(wrapped: nn.Module, model: nn.Module, strategy: str) -> dict[str, torch.Tensor]:
    """The RecModel's full state dict (collective under FSDP)."""
    if strategy != "fsdp":
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(wrapped, options=_options())
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        assert isinstance(value, torch.Tensor)
        out[key[len(PREFIX):] if key.startswith(PREFIX) else key] = value
    return out


def full_optimizer_state(wrapped: nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> Any:
    if strategy != "fsdp":
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(wrapped, optimizer, options=_options())


def load_optimizer_state(wrapped: nn.Module, optimizer: torch.optim.Optimizer, state: Any,
                         strategy: str) -> None:
    if strategy != "fsdp":
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(wrapped, optimizer, state, options=StateDictOptions(full_state_dict=True))


def clip_gradients(wrapped: nn.Module, model: nn.Module, max_norm: float, strategy: str) -> None:
    if max_norm <= 0:
        return
    clip = getattr(wrapped, "clip_grad_norm_", None)
    if strategy == "fsdp" and callable(clip):
        clip(max_norm)
    else:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def strategy_kwargs(strategy: str) -> dict[str, Any]:
    """Wrapper options: DDP without unused-parameter search; FSDP keeping original parameters (a unit
    mixes frozen and trainable encoder layers, and the optimiser's parameter groups use their names)."""
    return {"find_unused_parameters": False} if strategy == "ddp" else {"use_orig_params": True}
