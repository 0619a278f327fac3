"""State dicts and weight files: reading them as data, unwrapping, and loading them exactly.

Every weight file and checkpoint is read by :func:`read_torch_file`, the project's one
``torch.load(..., map_location="cpu", weights_only=True)``: a weights file is data, never code.
The helpers here are shared by the weight layouts and :mod:`openpose_lite.models.weights`, so a
key mismatch is reported the same way whatever the file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.io import file_problem

__all__ = ["exact_state", "key_mismatch_error", "load_exact", "load_part", "load_state_dict_file", "mmpose_head_prefix",
           "numbered_children", "read_torch_file", "rename_mmpose", "sample_keys", "strip_module_prefix",
           "unwrap_weights"]

# What torch's weights-only unpickler says of pickled code or objects: a global it does not
# allow (a class, builtins.eval), one of a blocked module (os.system pickles as posix.system),
# a call (REDUCE) of a function it does not know, an object it may not build; of other pickles
# (a plain pickle.dump): an opcode it does not read.
_PICKLED = re.compile(r"GLOBAL ([\w.]+) (?:was not an allowed|whose module)|reduce for unrecognized function (\S+)"
                      r"|Can only (?:create new object|build)")
_PICKLE_OPCODE = re.compile(r"Unsupported operand \d+")


def _unreadable_reason(exc: BaseException) -> str:
    """One line on why torch.load refused a file (torch's own advice, to unpickle code, is left out)."""
    text = str(exc)
    found = _PICKLED.search(text)
    if found:
        what = next((f"pickled {g}" for g in found.groups() if g), "pickled objects")
        return (f"not a weights-only PyTorch file: it holds {what} (code or an object, never run or built here: only "
                "tensors and plain data are read, torch.load with weights_only=True); for a model of your own, save "
                "its state dict alone: torch.save(model.state_dict(), path)")
    if _PICKLE_OPCODE.search(text):
        return ("not a weights-only PyTorch file: it holds pickle instructions that torch.load with weights_only=True "
                "refuses (pickled code or objects, or a plain pickle rather than a file torch.save wrote); nothing in "
                "it was run")
    return ("not a weights-only PyTorch file, or a truncated one (expected a state dict or checkpoint written "
            "by torch.save, read with weights_only=True)")


def read_torch_file(path: str | os.PathLike[str], what: str = "weights file",
                    map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, the project's one such call, with one-line errors.

    Raises:
        FileNotFoundError: no such file (``"<what> not found: <path>"``).
        ValueError: ``path`` is a folder (naming the checkpoint inside it, if any), or the file is
            not a weights-only PyTorch file (text, random bytes, a truncated file, pickled code).
        OSError: the file exists but cannot be read (permissions, I/O error).
    """
    p = Path(path)
    if p.is_dir():
        inside = [p / name for name in ("best.pt", "last.pt") if (p / name).is_file()]
        hint = f"; did you mean {inside[0]}?" if inside else ""
        raise ValueError(f"{p}: is a folder, expected a {what}{hint}")
    problem = file_problem(p)
    if problem == "not found":
        raise FileNotFoundError(f"{what} not found: {p}")
    if problem is not None:  # a FIFO would block torch.load, /dev/zero never ends
        raise ValueError(f"{p}: is {problem}, expected a {what} (a regular file)")
    with open(p, "rb"):
        pass  # an unreadable file (permissions, I/O) is an OSError of its own, raised here
    try:
        with warnings.catch_warnings():  # a pickle of another protocol: refused below or read, not a warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # a format problem, whatever torch raises for it (a truncated zip: even an OSError)
        raise ValueError(f"{p}: {_unreadable_reason(exc)}") from None


MODULE_PREFIX = "module."
BN_COUNTER = "num_batches_tracked"
# How many keys an error message lists.
_SAMPLE = 5


def numbered_children(keys: Collection[str], prefix: str) -> int:
    """How many distinct integer indices follow ``prefix`` in the keys (``layer1.0.``, ``layer1.1.`` -> 2)."""
    return len({head for head in (k[len(prefix):].split(".", 1)[0] for k in keys if k.startswith(prefix))
                if head.isdigit()})


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


def unwrap_weights(obj: Mapping[str, Any], source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict without ``module.``, stored config or None) of a loaded weights file.

    Accepts our checkpoints (``{"model": state_dict, "config": dict}``), other projects' training
    checkpoints that keep the weights under ``"state_dict"`` beside optimizer state (Lightweight
    OpenPose, mmpose), and bare state dicts. ValueError for anything else, an empty state dict or
    one with non-tensor entries.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    config = None
    if isinstance(obj.get("model"), Mapping):
        state, config = obj["model"], obj.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"{source}: checkpoint 'config' must be a dict, got {type(config).__name__}")
    elif isinstance(obj.get("state_dict"), Mapping):
        state = obj["state_dict"]
    else:
        state = obj
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source}: expected a state dict (names -> tensors) or a checkpoint with 'model' or "
                         f"'state_dict'; non-tensor entries {sample_keys(bad)}")
    if not state:
        raise ValueError(f"{source}: the state dict is empty")
    return strip_module_prefix(state), (dict(config) if config else None)


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Read a weights file (:func:`read_torch_file`): a state dict, or a checkpoint dict holding one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a weights-only PyTorch file holding a dict.
    """
    path = Path(path)
    obj = read_torch_file(path, "weights file")
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    return dict(obj)


def _shape_mismatches(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                      keys: Collection[str]) -> list[str]:
    return [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in keys if state[k].shape != expected[k].shape]


def exact_state(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                source: str) -> dict[str, torch.Tensor]:
    """``state`` in the key order of ``expected`` (a model's state dict, on any device, ``meta`` too),
    requiring the same keys and shapes; ValueError naming the keys otherwise.

    BatchNorm ``num_batches_tracked`` counters that a file lacks (files older than PyTorch 0.4.1)
    are the only keys filled in, with 0: they change nothing unless ``momentum=None``.
    """
    state = {**{k: torch.zeros((), dtype=v.dtype) for k, v in expected.items() if k.endswith(BN_COUNTER)},
             **state}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise key_mismatch_error(f"{source}: keys do not match the model", missing, unexpected)
    wrong = _shape_mismatches(expected, state, expected)
    if wrong:
        raise ValueError(f"{source}: {len(wrong)} shape mismatches, e.g. {wrong[:_SAMPLE]}")
    return {k: state[k] for k in expected}


def load_exact(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` with the checks of :func:`exact_state`."""
    model.load_state_dict(exact_state(model.state_dict(), state, source), strict=True)


def load_part(model: nn.Module, state: Mapping[str, torch.Tensor], keys: Collection[str], source: str,
              target: str = "the model", hint: str = "") -> list[str]:
    """Copy the tensors of ``keys`` (keys of ``model``'s state dict) from ``state`` into ``model`` (in place);
    returns the keys copied. Every key must be in ``state`` but the BatchNorm counters (files older than
    PyTorch 0.4.1 lack them, and the model keeps its own); ValueError naming missing keys (with ``hint``)
    or shape mismatches with ``target`` (the model, in words)."""
    missing = [k for k in keys if k not in state and not k.endswith(BN_COUNTER)]
    if missing:
        raise ValueError(f"{source}: {len(missing)} keys of {target} missing (e.g. {sample_keys(missing)})"
                         + (f"; {hint}" if hint else ""))
    copied = [k for k in keys if k in state]
    wrong = _shape_mismatches(model.state_dict(), state, copied)
    if wrong:
        raise ValueError(f"{source}: {len(wrong)} shape mismatches with {target}, e.g. {wrong[:_SAMPLE]}")
    model.load_state_dict({k: state[k] for k in copied}, strict=False)
    return copied


# mmpose files: the head's prefix (1.x ``head.``, 0.x ``keypoint_head.``), and the buffers some 1.x
# files carry beside the weights (left out).
MMPOSE_HEAD_PREFIXES = ("head.", "keypoint_head.")
_MMPOSE_DROPPED = ("data_preprocessor.",)


def mmpose_head_prefix(keys: Collection[str], *parts: str) -> str | None:
    """The head prefix under which an mmpose file has every key of ``parts``, or None."""
    return next((p for p in MMPOSE_HEAD_PREFIXES if all(f"{p}{part}" in keys for part in parts)), None)


def rename_mmpose(state: Mapping[str, Any], what: str, head_keys: tuple[str, ...],
                  head_renames: Mapping[str, str] | None = None) -> dict[str, Any]:
    """mmpose names -> ours: ``backbone.`` dropped, and under the head prefix (:func:`mmpose_head_prefix` of
    ``head_keys``) each prefix of ``head_renames`` replaced by its value (default: the head prefix dropped).
    ValueError naming ``what`` for a file without the head, or a key under neither."""
    head = mmpose_head_prefix(state, *head_keys)
    if head is None:
        raise ValueError(f"{what}: no '{{head,keypoint_head}}.{head_keys[0]}'")
    renames = {"backbone.": "", **{head + k: v for k, v in (head_renames or {"": ""}).items()}}
    out, other = {}, []
    for key, value in state.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        if prefix is not None:
            out[renames[prefix] + key[len(prefix):]] = value
        elif not key.startswith(_MMPOSE_DROPPED):
            other.append(key)
    if other:
        raise ValueError(f"{what}: {len(other)} keys outside {' and '.join(map(repr, renames))} "
                         f"(e.g. {sample_keys(other)})")
    return out
