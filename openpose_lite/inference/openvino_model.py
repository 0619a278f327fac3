"""Torch networks as OpenVINO models: conversion, int8 quantisation, the on-disk cache, IR files with our settings.

* **Conversion** (:func:`convert`): ``openvino.convert_model`` on the traced torch module (no ONNX
  step), wrapped to return the last stage's maps (:class:`~openpose_lite.models.export.LastStageOutputs`).
* **int8** (:func:`quantize`): NNCF's post-training quantisation on a
  :class:`~openpose_lite.inference.calibration.Calibration` set, with its overflow fix.
* **Cache**: IR folders (``model.xml`` + ``model.bin``) under :func:`cache_root`, keyed by
  :func:`model_digest`, the output names, the torch/OpenVINO/NNCF versions and, for int8, the calibration's
  identity and overflow fix; written under a temporary name and renamed, ``manifest.json`` (sizes, SHA-256)
  last: an entry without one or differing from it is built again. An unwritable cache costs one warning.
* **IR files** (:func:`export_ir`, :func:`read_ir`): the model plus, in its ``rt_info`` under
  ``openpose_lite``, the project's config dict, skeleton, output names, stride and precision,
  so an IR file runs like a weights file (:class:`IrModel`).

OpenVINO and NNCF are optional (the ``openvino`` extra); every entry point imports them on use
and says how to install them when they are missing (:class:`BackendUnavailableError`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openpose_lite.inference.calibration import Calibration
from openpose_lite.io import check_destination, files_sha256, parse_json
from openpose_lite.models.export import LastStageOutputs
from openpose_lite.skeleton import Skeleton

__all__ = ["EXTRA_INSTALL", "BackendUnavailableError", "IrModel", "cache_root", "convert", "export_ir", "import_nncf",
           "import_openvino", "model_digest", "openvino_core", "openvino_model", "read_ir"]

logger = logging.getLogger(__name__)

EXTRA_INSTALL = "pip install 'openpose-lite[openvino]'"
INPUT_NAME = "images"
RT_KEY = "openpose_lite"  # the rt_info section of our IR files
IR_FORMAT = 1
# The traced example's size: small (tracing runs the network), and one every network of the project
# takes (HRNet needs multiples of 32); the converted model's height and width stay dynamic.
EXAMPLE_HW = (64, 64)


class BackendUnavailableError(ValueError, ImportError):
    """The openvino / nncf packages are not installed (or do not import); the message says how to install them."""


def _import(module: str, needed_by: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a broken install fails with other errors than ImportError too
        raise BackendUnavailableError(f"{needed_by} needs the {module} package, which does not import "
                                      f"({type(exc).__name__}: {exc}); install it with {EXTRA_INSTALL}") from None


def import_openvino() -> Any:
    """The ``openvino`` module, or a :class:`BackendUnavailableError` naming the extra to install."""
    return _import("openvino", "backend openvino")


@functools.cache
def openvino_core() -> Any:
    """The process's one ``openvino.Core``, never released. OpenVINO's CPU plugin gives the thread that creates
    it an alternate signal stack, and when the plugin is destroyed unmaps that stack but restores the thread's
    previous one only if the destroying thread still uses it (openvinotoolkit/openvino:
    src/plugins/intel_cpu/src/plugin.cpp, ``SigAltStackSetup``, held by ``Plugin`` as ``CPUSpecialSetup``).
    With a Core per model, two plugins released in the order they were made leave the main thread's signal
    stack unmapped, and the next signal Python handles there (SIGTERM, Ctrl-C) ends the process in SIGSEGV."""
    return import_openvino().Core()


def import_nncf() -> Any:
    """The ``nncf`` module (int8 quantisation), or a :class:`BackendUnavailableError` naming the extra."""
    # torch's C++-extension module, which nncf imports, warns about CUDA on machines without it.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    nncf = _import("nncf", "precision int8")
    nncf.set_log_level(logging.WARNING)
    return nncf


def cache_root(cache: str | os.PathLike[str] | bool | None = None) -> Path | None:
    """The folder of converted models: ``cache`` itself, or (``None``/``True``) ``$OPENPOSE_LITE_CACHE/openvino``,
    else ``$XDG_CACHE_HOME/openpose_lite/openvino`` (``~/.cache/openpose_lite/openvino``); ``False``: no cache."""
    if cache is False:
        return None
    if cache is None or cache is True:
        base = os.environ.get("OPENPOSE_LITE_CACHE")
        if not base:
            base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "openpose_lite")
        return Path(base).expanduser() / "openvino"
    return Path(cache).expanduser()


def model_digest(model: nn.Module) -> str:
    """SHA-256 of a network: its class, its module structure (``repr``) and every state-dict tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}\0{model!r}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _versions(with_nncf: bool) -> str:
    """The versions a cached model depends on (nncf's read from its metadata: importing it takes seconds)."""
    text = f"openvino {import_openvino().get_version()} torch {torch.__version__} format {IR_FORMAT}"
    if with_nncf:
        try:
            text += f" nncf {importlib.metadata.version('nncf')}"
        except importlib.metadata.PackageNotFoundError:
            import_nncf()  # raises the error that names the extra
    return text


# ------------------------------------------------------------------------------ conversion
def convert(model: nn.Module, names: Sequence[str], example_hw: tuple[int, int] = EXAMPLE_HW) -> Any:
    """A torch network -> ``openvino.Model``: input ``images`` (B, 3, H, W) dynamic, outputs the last stage's ``names``."""
    ov = import_openvino()
    names = tuple(names)
    wrapper = LastStageOutputs(model, names)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # torch.jit's deprecation notices are not ours to show.
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            # Traced here without the tracer's re-run check (convert_model would run it: half its
            # time); the network has no data-dependent control flow, and the tests compare the maps.
            traced = torch.jit.trace(wrapper, torch.zeros(1, 3, *example_hw), check_trace=False)
            ov_model = ov.convert_model(traced, example_input=torch.zeros(1, 3, *example_hw),
                                        input=[ov.PartialShape([-1, 3, -1, -1])])
    finally:
        model.train(was_training)
    if len(ov_model.outputs) != len(names):
        raise ValueError(f"OpenVINO conversion: {len(ov_model.outputs)} outputs for the {len(names)} maps {list(names)}")
    ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
    for output, name in zip(ov_model.outputs, names):
        output.get_tensor().set_names({name})
    return ov_model


def quantize(ov_model: Any, calibration: Calibration) -> Any:
    """NNCF post-training int8 quantisation of ``ov_model`` on ``calibration`` (default preset: symmetric, fast
    bias correction), the convolutions ``calibration.overflow_fix`` names quantised to half the int8 range."""
    nncf = import_nncf()
    logger.info("quantising to int8 on %s (up to %d inputs, overflow fix %s); this takes a while, once",
                calibration.where, calibration.limit, calibration.overflow_fix)
    count = sum(1 for _ in calibration)  # NNCF warns when asked for more inputs than there are
    advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix(calibration.overflow_fix))
    # NNCF draws rich progress bars on stdout; a library prints nothing, so they go nowhere.
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(ov_model, nncf.Dataset(calibration), subset_size=count, advanced_parameters=advanced)


# ------------------------------------------------------------------------------ the cache
MANIFEST = "manifest.json"  # a cache entry's file sizes and SHA-256, written last
CACHED_FILES = ("model.xml", "model.bin")


def _manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {"size", "sha256"}}`` of a cache entry's IR files."""
    return {name: {"size": (folder / name).stat().st_size,
                   "sha256": files_sha256([folder / name], "cached IR file")} for name in CACHED_FILES}


def _entry_problem(folder: Path) -> str | None:
    """Why the cache entry ``folder`` cannot be used (no manifest, a file missing or not as recorded), or None."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no {MANIFEST} (written by an older version, or by a run that was killed)"
    except (OSError, ValueError) as exc:
        return f"its {MANIFEST} is unreadable ({exc})"
    try:
        actual = _manifest(folder)
    except (OSError, ValueError) as exc:
        return f"{exc.strerror}: {exc.filename}" if getattr(exc, "strerror", None) else str(exc)
    changed = [name for name in CACHED_FILES if not isinstance(recorded, dict) or recorded.get(name) != actual[name]]
    return f"{', '.join(changed)} not as written (size or SHA-256 differ)" if changed else None


def _reason(exc: Exception) -> str:
    """One line of an OSError or an OpenVINO RuntimeError (whose C++ text spans lines; its last says what failed)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@contextlib.contextmanager
def _saved(ov_model: Any, parent: Path, name: str) -> Iterator[Path]:
    """A temporary folder ``.name.*`` in ``parent`` (made if missing) with ``ov_model`` saved in it as
    ``model.xml`` + ``model.bin``, removed on leaving (what the caller moved out stays)."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        import_openvino().save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)  # fp16: not exact
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_ir_folder(ov_model: Any, folder: Path) -> bool:
    """Save ``ov_model`` as ``folder/model.xml`` + ``model.bin`` + the manifest: into a temporary sibling, then
    renamed. False (and one warning) if it could not be written."""
    try:
        with _saved(ov_model, folder.parent, folder.name) as tmp:
            # The manifest last: an entry is complete only with it (the rename makes all three appear at once).
            (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp)))
            os.rename(tmp, folder)
    except (OSError, RuntimeError) as exc:  # RuntimeError: OpenVINO's own write errors (a full disk: iostream error)
        if isinstance(exc, OSError) and folder.is_dir() and _entry_problem(folder) is None:
            return True  # another process cached the same model meanwhile: theirs is as good
        logger.warning("OpenVINO cache %s not writable (%s); running without caching", folder.parent, _reason(exc))
        return False
    return True


def _cached(root: Path | None, key: str, build: Any, what: str) -> tuple[Any, Path | None]:
    """The model cached under ``key`` (read, once its manifest matches), or ``build()`` (then cached):
    ``(openvino.Model, its .xml or None)``."""
    if root is None:
        return build(), None
    folder = root / key
    xml = folder / "model.xml"
    if folder.is_dir():
        problem = _entry_problem(folder)
        if problem is None:
            try:
                model = openvino_core().read_model(str(xml))
                logger.info("%s: read from the cache %s", what, folder)
                return model, xml
            except RuntimeError as exc:
                problem = f"OpenVINO cannot read it ({_reason(exc)})"
        logger.warning("%s: the cache entry %s is damaged or stale (%s); removed, building it again", what,
                       folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
    model = build()
    return model, (xml if _write_ir_folder(model, folder) else None)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def openvino_model(model: nn.Module | IrModel, names: Sequence[str], int8: bool = False,
                   calibration: Calibration | None = None,
                   cache: str | os.PathLike[str] | bool | None = None) -> tuple[Any, Path | None]:
    """The converted (and with ``int8``, quantised) ``openvino.Model`` of ``model`` through the cache, and the
    path of its cached IR (``None`` when not cached). An :class:`IrModel` is not converted; with ``int8`` it is
    quantised (cached by its files' bytes). The fp32 model is converted (or read) for int8 only to quantise it."""
    if int8:
        if calibration is None:
            raise ValueError("precision int8 needs a calibration set (a folder of a few hundred images like the ones "
                             "to run)")
        calibration.check()  # before converting: a folder without usable images is the user's first error
    root = cache_root(cache)
    names = tuple(names)
    is_ir = isinstance(model, IrModel)
    source = f"IR {model.path}" if is_ir else type(model).__name__
    base_key = model.digest() if is_ir else _key("convert", model_digest(model), *names, _versions(False))

    def base() -> tuple[Any, Path | None]:  # the fp32 model
        if is_ir:
            return model.ov_model, model.path
        return _cached(root, base_key, lambda: convert(model, names), f"OpenVINO model of {source}")

    if not int8:
        return base()
    key = _key("int8", base_key, calibration.identity(), f"overflow fix {calibration.overflow_fix}", _versions(True))
    return _cached(root, key, lambda: quantize(base()[0], calibration), f"int8 model of {source}")


# ------------------------------------------------------------------------------ IR files
@dataclass
class IrModel:
    """An OpenVINO IR file read back (:func:`read_ir`): what make_runner takes in place of a torch network.
    ``config``, ``skeleton``, ``stride`` and ``arch`` come from the file's ``rt_info`` (``None`` for an IR
    another tool wrote, or where :func:`export_ir` was given none), read by the codecs' ``check_model``."""

    path: Path
    ov_model: Any
    names: tuple[str, ...]
    precision: str  # "fp32" or "int8" (the file's; bf16 is a runtime choice)
    config: dict[str, Any] | None = None
    skeleton: Skeleton | None = None
    stride: int | None = None
    arch: str | None = None
    foreign: bool = False  # no openpose_lite settings inside: written by another tool

    def digest(self) -> str:
        """SHA-256 of the IR's two files."""
        return files_sha256((self.path, self.path.with_suffix(".bin")), "OpenVINO IR file")


def export_ir(model: nn.Module, path: str | os.PathLike[str], names: Sequence[str], config: Mapping[str, Any] | None,
              skeleton: Skeleton | None = None, precision: str = "fp32", calibration: Calibration | None = None,
              cache: str | os.PathLike[str] | bool | None = None) -> Path:
    """Write ``model``'s last stage ``names`` as an IR file pair ``path`` (.xml) + .bin, with ``config``
    (:func:`~openpose_lite.config.config_to_dict`), ``skeleton`` (default: the model's), the stride and
    the output names under ``rt_info["openpose_lite"]``. ``precision``: ``fp32``, or ``int8`` quantised
    on ``calibration``. The .bin is moved in first, then the .xml, so the .xml never points at a missing
    or partial .bin."""
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise ValueError(f"{path}: an OpenVINO IR is written as a .xml file (its weights go beside it, .bin)")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"IR precision: expected fp32 or int8 (bf16 is chosen at run time), got {precision!r}")
    for written in (path.with_suffix(".bin"), path):  # only regular files are replaced (not a FIFO, a device)
        check_destination(written)
    try:
        text = json.dumps(dict(config) if config is not None else None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: expected a JSON-able dict (config_to_dict), got one that is not ({exc})") from None
    skeleton = skeleton if skeleton is not None else getattr(model, "skeleton", None)
    ov_model, _ = openvino_model(model, names, precision == "int8", calibration, cache)
    info = {"format": str(IR_FORMAT), "config": text, "names": json.dumps(list(names)), "precision": precision,
            "arch": str(getattr(model, "arch", type(model).__name__)),
            "skeleton": json.dumps(skeleton.to_dict() if skeleton is not None else None),
            "stride": str(getattr(model, "stride", "") or "")}
    for field_name, value in info.items():
        ov_model.set_rt_info(value, [RT_KEY, field_name])
    with _saved(ov_model, path.parent, path.name) as tmp:
        os.replace(tmp / "model.bin", path.with_suffix(".bin"))
        os.replace(tmp / "model.xml", path)
    logger.info("wrote the OpenVINO IR (%s, outputs %s) to %s", precision, list(names), path)
    return path


def _rt(ov_model: Any, name: str) -> str | None:
    return ov_model.get_rt_info([RT_KEY, name]).astype(str) if ov_model.has_rt_info([RT_KEY, name]) else None


def read_ir(path: str | os.PathLike[str]) -> IrModel:
    """An IR file (.xml with its .bin beside it) -> :class:`IrModel`, with the settings :func:`export_ir` stored
    (an IR another tool wrote: ``foreign``, no settings, its outputs' own names). A ValueError names a bad file."""
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise ValueError(f"{path}: not an OpenVINO IR (expected a .xml file with its .bin beside it)")
    for p in (path, path.with_suffix(".bin")):
        if not p.is_file():
            raise ValueError(f"{p}: not found (an OpenVINO IR is a .xml file and a .bin file of the same name)")
    try:
        ov_model = openvino_core().read_model(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable OpenVINO IR ({str(exc).strip().splitlines()[0]})") from None
    names = tuple(sorted(o.get_names())[0] if o.get_names() else f"output{i}" for i, o in enumerate(ov_model.outputs))
    precision = "int8" if any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops()) else "fp32"
    if _rt(ov_model, "format") is None:
        logger.warning("%s: an OpenVINO IR without openpose_lite settings (written by another tool): no config, "
                       "skeleton or stride inside", path)
        return IrModel(path, ov_model, names, precision, foreign=True)
    try:
        config = parse_json(_rt(ov_model, "config") or "null", "config")  # bounded: nesting, cost
        skeleton_data = parse_json(_rt(ov_model, "skeleton") or "null", "skeleton")
        skeleton = Skeleton.from_dict(skeleton_data, source=str(path)) if skeleton_data is not None else None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: its openpose_lite settings (rt_info) are damaged ({exc})") from None
    stride = _rt(ov_model, "stride")
    return IrModel(path, ov_model, names, precision, config=config, skeleton=skeleton,
                   stride=int(stride) if stride else None, arch=_rt(ov_model, "arch"))
