"""State dicts and weight files: reading them as data, unwrapping, and loading them exactly.

Every weight file and checkpoint is read by :func:`read_torch_file`, the project's one
``torch.load(..., map_location="cpu", weights_only=True)``: a weights file is data, never code.
The helpers here are shared by the layout modules (``cmu_weights``, ``imagenet_weights``,
``mobilenet_weights``, ``hrnet``) and :mod:`openpose_lite.models.weights`, so a key mismatch is
reported the same way whatever the file.
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

__all__ = [
    "check_tensor_state",
    "read_torch_file",
    "key_mismatch_error",
    "load_exact",
    "load_state_dict_file",
    "numbered_children",
    "sample_keys",
    "strip_module_prefix",
]

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
    path = Path(path)
    obj = read_torch_file(path, "weights file")
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    return dict(obj)


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
