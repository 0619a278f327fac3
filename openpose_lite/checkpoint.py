"""Checkpoints: plain data written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict::

    {"format": "openpose_lite.checkpoint", "format_version": 1, "openpose_lite_version": str,
     "model": state_dict, "config": config_to_dict(cfg), **extra}

``extra`` carries whatever training needs to resume (optimizer/scheduler state dicts,
epoch, best metric, RNG states from :func:`capture_rng_state`). Everything must be plain
data (tensors, dicts, lists, tuples, str, int, float, bool, None) because loading never
unpickles code: a checkpoint is data, never a program. :func:`save_checkpoint` checks this
before writing and converts the common near-misses (numpy scalars -> Python numbers,
numpy arrays -> tensors, paths -> str), so a bad value fails at save time, naming its key,
rather than at load time.
"""

from __future__ import annotations

import collections
import logging
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from openpose_lite import __version__
from openpose_lite.io import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "openpose_lite.checkpoint"
_FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "openpose_lite_version", "model", "config")
# Containers the weights_only unpickler rebuilds (Counter: MultiStepLR keeps its milestones in one).
_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)
_SCALARS = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def _to_plain(value: Any, where: str) -> Any:
    """Return ``value`` as plain data the weights_only loader accepts, or raise naming ``where``."""
    if isinstance(value, torch.Tensor):
        # Parameters and tensor subclasses are saved as their data (a plain tensor).
        return value.detach() if type(value) is not torch.Tensor else value
    if type(value) in _SCALARS:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value) in _MAPPINGS:
        out = type(value)()
        for k, v in value.items():
            if type(k) not in _SCALARS:
                k = _to_plain(k, f"{where} key {k!r}")
            out[k] = _to_plain(v, f"{where}[{k!r}]")
        return out
    if type(value) in (list, tuple):
        return type(value)(_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise ValueError(
        f"{where}: {type(value).__module__}.{type(value).__qualname__} is not plain data; checkpoints "
        "hold only tensors, dicts, lists, tuples, str, int, float, bool and None (they are loaded "
        "with weights_only=True)"
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model_state: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    **extra: Any,
) -> Path:
    """Write a checkpoint atomically: a temp file in the same folder, fsync, then ``os.replace``.

    A crash mid-write leaves the previous checkpoint intact. ``model_state`` is a model's
    ``state_dict()``; ``config`` the resolved config as a plain dict
    (:func:`openpose_lite.config.config_to_dict`); ``extra`` any further plain data
    (optimizer, scheduler, epoch, RNG states, ...), stored under its own keys.
    """
    p = Path(path)
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved ({', '.join(_RESERVED)})")
    if not isinstance(model_state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model_state.items()
    ):
        raise ValueError("save_checkpoint: model_state must map parameter names (str) to tensors")
    if not isinstance(config, Mapping):
        raise ValueError(f"save_checkpoint: config must be a plain dict (config_to_dict(cfg)), got {type(config).__name__}")
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": _FORMAT_VERSION,
        "openpose_lite_version": __version__,
        "model": _to_plain(dict(model_state), "model_state"),
        "config": _to_plain(dict(config), "config"),
    }
    for key, value in extra.items():
        payload[key] = _to_plain(value, key)

    atomic_write(p, lambda fh: torch.save(payload, fh), binary=True)
    logger.info("saved checkpoint %s", p)
    return p


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: data only).

    Returns the dict (keys ``model``, ``config``, ``format``, ... and the extras). Raises
    FileNotFoundError for a missing file and ValueError naming the file when it is not a
    checkpoint, holds pickled objects other than plain data, or lacks a ``config``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... by file kind
        raise ValueError(
            f"{p}: cannot be read as an openpose_lite checkpoint with weights_only=True "
            f"(not a torch file, or it contains objects other than plain data): {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p}: not an openpose_lite checkpoint (a {type(data).__name__}, expected a dict)")
    if "config" not in data:
        raise ValueError(
            f"{p}: not an openpose_lite checkpoint: no 'config' entry (keys: {sorted(map(str, data))[:10]}); "
            "a bare state dict must be loaded through the model's weight loaders"
        )
    if not isinstance(data["config"], dict):
        raise ValueError(f"{p}: the 'config' entry is a {type(data['config']).__name__}, expected a dict")
    if "model" not in data or not isinstance(data["model"], dict):
        raise ValueError(f"{p}: not an openpose_lite checkpoint: no 'model' state dict")
    version = data.get("format_version", _FORMAT_VERSION)
    if isinstance(version, int) and version > _FORMAT_VERSION:
        raise ValueError(f"{p}: checkpoint format_version {version} is newer than this openpose_lite "
                         f"({_FORMAT_VERSION}); upgrade the package")
    return data


# ---------------------------------------------------------------------------------- RNG
def capture_rng_state() -> dict[str, Any]:
    """The state of every global RNG training touches, as plain data.

    Keys: ``python`` (random module), ``numpy`` (the legacy global generator),
    ``torch`` (CPU generator, a uint8 tensor) and ``cuda`` (one tensor per device) when CUDA
    is available.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {
            "name": str(name),
            "keys": [int(v) for v in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNGs from :func:`capture_rng_state`'s output (e.g. when resuming).

    CUDA states are restored when present and the device count matches; otherwise they are
    skipped with a warning (resuming a GPU run on CPU is allowed, just not bit-exact).
    """
    try:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
        npy = state["numpy"]
        np.random.set_state((
            str(npy["name"]),
            np.asarray(npy["keys"], dtype=np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        ))
        torch.set_rng_state(state["torch"].to(device="cpu", dtype=torch.uint8))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"restore_rng_state: malformed RNG state (expected capture_rng_state()'s dict): {exc!r}") from None
    cuda_states = state.get("cuda")
    if cuda_states:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all([s.to(device="cpu", dtype=torch.uint8) for s in cuda_states])
        else:
            logger.warning("checkpoint holds %d CUDA RNG states but %d CUDA devices are available; not restored",
                           len(cuda_states), torch.cuda.device_count() if torch.cuda.is_available() else 0)
