"""State dicts and weight files: reading them as data, unwrapping, and loading them exactly.

Every weight file is read by :func:`load_state_dict_file` with
``torch.load(..., map_location="cpu", weights_only=True)``: a weights file is data, never code.
The helpers here are shared by the layout modules (``cmu_weights``, ``imagenet_weights``,
``mobilenet_weights``, ``hrnet``) and :mod:`openpose_lite.models.weights`, so a key mismatch is
reported the same way whatever the file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "check_tensor_state",
    "key_mismatch_error",
    "load_exact",
    "load_state_dict_file",
    "sample_keys",
    "split_checkpoint",
    "strip_module_prefix",
]

MODULE_PREFIX = "module."
# How many keys an error message lists.
_SAMPLE = 5


def sample_keys(keys: Collection[str]) -> list[str]:
    """The first few keys, sorted, for an error message."""
    return sorted(keys)[:_SAMPLE]


def key_mismatch_error(what: str, missing: Collection[str], unexpected: Collection[str], hint: str = "") -> ValueError:
    """One error naming how many keys are missing and unexpected, with a few of each."""
    msg = (
        f"{what}: {len(missing)} missing keys (e.g. {sample_keys(missing)}), "
        f"{len(unexpected)} unexpected keys (e.g. {sample_keys(unexpected)})"
    )
    return ValueError(msg + (f"; {hint}" if hint else ""))


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` / DDP put on every key (if all have it)."""
    if state_dict and all(k.startswith(MODULE_PREFIX) for k in state_dict):
        return {k[len(MODULE_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def check_tensor_state(state: Mapping[str, Any], source: str, container: str) -> dict[str, torch.Tensor]:
    """``state`` as a dict if it is a non-empty mapping of names to tensors; ``container`` names the
    checkpoint key a state dict may also sit under (for the error message)."""
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source}: expected a state dict (names -> tensors) or a checkpoint with {container!r}; "
                         f"non-tensor entries {sample_keys(bad)}")
    if not state:
        raise ValueError(f"{source}: the state dict is empty")
    return dict(state)


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Read a weights file: a state dict, or a checkpoint dict holding one under ``"model"``.

    Uses ``torch.load(map_location="cpu", weights_only=True)``: a weights file is data, never code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a weights-only PyTorch file holding a dict.
    """
    from openpose_lite.checkpoint import read_torch_file  # the project's one torch.load

    path = Path(path)
    obj = read_torch_file(path, "weights file")
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    return dict(obj)


def split_checkpoint(obj: Mapping[str, Any], source: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict, config or None) from a loaded file.

    Accepts our checkpoint dict ``{"model": state_dict, "config": dict}`` (``"config"``
    optional) or a bare state dict (every value a tensor).
    """
    if "model" in obj and isinstance(obj["model"], Mapping):
        state, config = obj["model"], obj.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"{source}: checkpoint 'config' must be a dict, got {type(config).__name__}")
        config = dict(config) if config is not None else None
    else:
        state, config = obj, None
    return check_tensor_state(state, source, "model"), config


BN_COUNTER = "num_batches_tracked"


def load_exact(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` requiring the same keys and shapes; clear errors otherwise.

    BatchNorm ``num_batches_tracked`` counters that a file lacks (files older than PyTorch 0.4.1)
    are the only keys filled in, with 0: they change nothing unless ``momentum=None``.
    """
    expected = model.state_dict()
    state = {**{k: torch.zeros((), dtype=v.dtype) for k, v in expected.items() if k.endswith(BN_COUNTER)},
             **state}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise key_mismatch_error(f"{source}: keys do not match the model", missing, unexpected)
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{source}: {len(wrong)} shape mismatches, e.g. {wrong[:_SAMPLE]}")
    model.load_state_dict(state, strict=True)
