"""Typed, frozen configuration: YAML deltas -> dataclasses -> plain dicts inside checkpoints.

A configuration is a :class:`Config` of five frozen sections (``model``, ``codec``, ``data``,
``train``, ``topdown``). YAML files hold only the *deltas* from the defaults written here, so a file says
what is special about an experiment and nothing else::

    train:
      lr: 1.0e-4
      epochs: 20

Rules, enforced in one place (each section's ``__post_init__``), so a directly constructed
section, a YAML file, a command-line override and a checkpoint's stored config are all
validated the same way:

* Unknown sections or keys are errors that name the key and the file (or override).
* A value of the wrong type is an error naming the field (``train.lr``). Ints are accepted
  where a float is expected, and so are numeric strings, because YAML 1.1 (PyYAML) reads
  ``1e-4`` (no dot) as a string; lists become tuples.
* Choice fields (``Literal``) list the valid values in their error.
* Cross-field rules (``scale_min <= scale_max``, crop size a multiple of the stride, ...)
  are checked too.

Overrides are ``section.key=value`` strings whose value is parsed as YAML
(``train.lr=1e-3``, ``train.step_milestones=[30,60]``, ``data.train_ann=null``).

Learning rates are tied to the loss normalisation in :mod:`openpose_lite.losses`
(CMU's: squared error summed over all map elements, divided by ``2 * batch``), which is why
the default SGD rate is the paper's small 4e-5.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from openpose_lite.io import write_text_atomic

__all__ = [
    "CodecConfig",
    "Config",
    "DataConfig",
    "ModelConfig",
    "TopDownConfig",
    "TrainConfig",
    "build_bottomup_codec",
    "build_topdown_codec",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
    "save_config",
]


class _Section:
    """Base of the config sections: type checking and coercion after construction.

    Subclasses set ``_section`` (their key in :class:`Config`) and may define ``_check``
    for value rules; errors are ``ValueError`` naming ``section.field``.
    """

    _section: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            name = f"{self._section}.{f.name}"
            value = _coerce(getattr(self, f.name), hints[f.name], name)
            # Frozen dataclass: coercion (int -> float, list -> tuple) has to bypass __setattr__.
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Value rules beyond types; overridden by sections that have some."""

    def _require(self, ok: bool, field_name: str, expected: str) -> None:
        if not ok:
            value = getattr(self, field_name)
            raise ValueError(f"{self._section}.{field_name}: expected {expected}, got {value!r}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it, coerced where allowed."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ValueError:
                continue
        raise ValueError(f"{name}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected {_type_name(tp)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[T, ...]: any length
            item_types = [args[0]] * len(value)
        else:  # tuple[T1, T2]: exactly that many items
            if len(value) != len(args):
                raise ValueError(f"{name}: expected {len(args)} values, got {value!r}")
            item_types = list(args)
        return tuple(_coerce(v, t, f"{name}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string, not a float.
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{name}: unsupported annotation {tp!r}")


# ----------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelConfig(_Section):
    """Network architecture.

    ``vgg19_paf`` is the CMU bottom-up model (VGG19 trunk + ``num_stages`` refinement stages
    of ``stage_channels`` channels); ``width_mult`` is a channel multiplier for small CPU
    models (1.0 keeps the CMU layout, which the public weights need). ``hrnet`` is the
    top-down comparison branch with base width ``hrnet_width`` and ``hrnet_blocks`` residual
    blocks per branch (4 in the paper).
    ``init``: how vgg19_paf's CPM and stage convs start: ``cmu`` (N(0, 0.01^2), the paper's,
    for a pretrained trunk) or ``kaiming`` (He-normal; for training the whole network from
    scratch with Adam, see models/vgg19_paf.py).
    """

    _section: typing.ClassVar[str] = "model"

    arch: Literal["vgg19_paf", "hrnet"] = "vgg19_paf"
    num_stages: int = 6
    stage_channels: int = 128
    width_mult: float = 1.0
    hrnet_width: int = 32
    hrnet_blocks: int = 4
    init: Literal["cmu", "kaiming"] = "cmu"

    def _check(self) -> None:
        self._require(self.num_stages >= 1, "num_stages", "an integer >= 1")
        self._require(self.stage_channels >= 1, "stage_channels", "an integer >= 1")
        self._require(math.isfinite(self.width_mult) and self.width_mult > 0, "width_mult", "a number > 0")
        self._require(self.hrnet_width >= 1, "hrnet_width", "an integer >= 1")
        self._require(self.hrnet_blocks >= 1, "hrnet_blocks", "an integer >= 1")


@dataclass(frozen=True)
class CodecConfig(_Section):
    """Target encoding and decoding (CMU COCO settings).

    ``stride``: input pixels per output cell. ``sigma``: Gaussian std of the confidence maps
    in *input* pixels (CMU: 7 at stride 8). ``paf_half_width``: half-width of a limb's PAF
    band in *output cells* (CMU: 1). ``heatmap_merge``: where people's Gaussians overlap, sum
    and clip at 1 (``sum``, the CMU training code) or keep the largest (``max``, the paper).
    ``input_size``: network input height at inference (the image is letterboxed to it).
    ``peak_threshold``, ``refine``, ``blur_kernel``: decoding (see codecs.BottomUpPafCodec);
    DARK's blur (odd kernel, 0 = none) smooths network output before sub-pixel refinement.
    """

    _section: typing.ClassVar[str] = "codec"

    stride: int = 8
    sigma: float = 7.0
    paf_half_width: float = 1.0
    heatmap_merge: Literal["sum", "max"] = "sum"
    input_size: int = 368
    peak_threshold: float = 0.1
    refine: Literal["dark", "quarter", "none"] = "dark"
    blur_kernel: int = 3

    def _check(self) -> None:
        self._require(self.stride >= 1, "stride", "an integer >= 1")
        self._require(self.sigma > 0, "sigma", "a number > 0")
        self._require(self.paf_half_width > 0, "paf_half_width", "a number > 0")
        self._require(self.blur_kernel == 0 or self.blur_kernel % 2 == 1, "blur_kernel", "0 or an odd kernel size")
        self._require(self.input_size >= self.stride and self.input_size % self.stride == 0,
                      "input_size", f"a positive multiple of codec.stride ({self.stride})")


@dataclass(frozen=True)
class DataConfig(_Section):
    """Datasets and augmentation.

    COCO-format keypoint files and image folders (``train_ann``/``train_images``,
    ``val_ann``/``val_images``). With ``synthetic: true``, scenes of stick figures are
    generated into the output directory when those paths are absent
    (``synthetic_train_images`` / ``synthetic_val_images`` of them).

    Augmentation follows the CMU training recipe: the main person is scaled so that its
    height is ``target_person_scale * crop_size`` times a factor drawn uniformly from
    ``[scale_min, scale_max]``; then a rotation in ``±rotation_deg``, a centre shift of up
    to ``center_jitter_px`` crop pixels, a ``crop_size`` square crop, and a horizontal flip
    with probability ``flip_prob``.
    """

    _section: typing.ClassVar[str] = "data"

    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    synthetic: bool = False
    synthetic_train_images: int = 2000
    synthetic_val_images: int = 200
    crop_size: int = 368
    scale_min: float = 0.5
    scale_max: float = 1.1
    target_person_scale: float = 0.6
    rotation_deg: float = 40.0
    center_jitter_px: float = 40.0
    flip_prob: float = 0.5
    num_workers: int = 2

    def _check(self) -> None:
        self._require(self.synthetic_train_images >= 1, "synthetic_train_images", "an integer >= 1")
        self._require(self.synthetic_val_images >= 1, "synthetic_val_images", "an integer >= 1")
        self._require(self.crop_size >= 1, "crop_size", "an integer >= 1")
        self._require(0 < self.scale_min, "scale_min", "a number > 0")
        self._require(self.scale_min <= self.scale_max, "scale_max", f"a number >= data.scale_min ({self.scale_min})")
        self._require(self.target_person_scale > 0, "target_person_scale", "a number > 0")
        self._require(0 <= self.rotation_deg <= 180, "rotation_deg", "a number in [0, 180]")
        self._require(self.center_jitter_px >= 0, "center_jitter_px", "a number >= 0")
        self._require(0 <= self.flip_prob <= 1, "flip_prob", "a number in [0, 1]")
        self._require(self.num_workers >= 0, "num_workers", "an integer >= 0")
        for ann, images in (("train_ann", "train_images"), ("val_ann", "val_images")):
            # An annotation file without its images (or the reverse) cannot be used.
            if (getattr(self, ann) is None) != (getattr(self, images) is None):
                raise ValueError(f"data.{ann} and data.{images} must be given together, "
                                 f"got {getattr(self, ann)!r} and {getattr(self, images)!r}")


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimisation (defaults: the CMU COCO recipe).

    CMU trained with SGD (momentum 0.9, weight decay 5e-4) at base lr 4e-5, a loss summed
    over all map elements and divided by ``2 * batch`` (see :mod:`openpose_lite.losses`),
    batch 10, dividing the lr by 3 (``gamma`` 0.333) about every 24 COCO epochs.
    ``freeze_trunk_epochs`` keeps the pretrained VGG trunk fixed while the randomly
    initialised stages settle. ``eval_every`` is in epochs (0: only at the end);
    ``val_max_images`` caps the images used for COCO AP during training (0: all).
    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    _section: typing.ClassVar[str] = "train"

    epochs: int = 100
    batch_size: int = 10
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 4e-5
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    scheduler: Literal["plateau", "step"] = "step"
    step_milestones: tuple[int, ...] = (25, 50, 75)
    gamma: float = 0.333
    plateau_patience: int = 5
    freeze_trunk_epochs: int = 5
    amp: bool = True
    eval_every: int = 5
    val_max_images: int = 500
    seed: int = 0
    output_dir: str = "runs/vgg19"
    device: str = "auto"
    log_every: int = 50

    def _check(self) -> None:
        self._require(self.epochs >= 1, "epochs", "an integer >= 1")
        self._require(self.batch_size >= 1, "batch_size", "an integer >= 1")
        self._require(self.lr > 0 and math.isfinite(self.lr), "lr", "a finite number > 0")
        self._require(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        self._require(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        self._require(all(m >= 1 for m in self.step_milestones)
                      and list(self.step_milestones) == sorted(set(self.step_milestones)),
                      "step_milestones", "strictly increasing epochs >= 1")
        self._require(0 < self.gamma <= 1, "gamma", "a number in (0, 1]")
        self._require(self.plateau_patience >= 0, "plateau_patience", "an integer >= 0")
        self._require(self.freeze_trunk_epochs >= 0, "freeze_trunk_epochs", "an integer >= 0")
        self._require(self.eval_every >= 0, "eval_every", "an integer >= 0 (0: evaluate only at the end)")
        self._require(self.val_max_images >= 0, "val_max_images", "an integer >= 0 (0: all images)")
        self._require(self.seed >= 0, "seed", "an integer >= 0")
        self._require(bool(self.output_dir), "output_dir", "a non-empty path")
        self._require(bool(_DEVICE_RE.match(self.device)), "device", "one of 'auto', 'cpu', 'cuda', 'cuda:N'")
        self._require(self.log_every >= 1, "log_every", "an integer >= 1")


@dataclass(frozen=True)
class TopDownConfig(_Section):
    """The top-down (HRNet) branch: crops, heatmap targets, decoding and augmentation.

    ``input_hw`` / ``heatmap_hw``: crop and map sizes (HRNet COCO: 256x192 -> 64x48).
    ``sigma``: Gaussian sigma in heatmap cells. ``refine``: "quarter" (HRNet), "dark" or
    "none"; ``blur_kernel``: DARK's blur. ``flip_test``: average with the mirrored crop.
    ``convention``: the pixel and cell convention of crops and heatmaps (see geometry.py):
    ``openpose_lite`` (ours) or ``hrnet`` (the HRNet reference's, which its public weights were
    trained with: use it to fine-tune them); it also fixes the flip test's shift.
    ``padding``: box enlargement. The rest is the HRNet augmentation (see data/topdown.py).
    """

    _section: typing.ClassVar[str] = "topdown"

    input_hw: tuple[int, int] = (256, 192)
    heatmap_hw: tuple[int, int] = (64, 48)
    sigma: float = 2.0
    refine: Literal["quarter", "dark", "none"] = "quarter"
    blur_kernel: int = 11
    flip_test: bool = True
    convention: Literal["openpose_lite", "hrnet"] = "openpose_lite"
    padding: float = 1.25
    scale_factor: float = 0.35
    rotation_deg: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8

    def _check(self) -> None:
        self._require(len(self.input_hw) == 2 and len(self.heatmap_hw) == 2 and min(self.heatmap_hw) >= 1
                      and self.input_hw[0] % self.heatmap_hw[0] == 0 and self.input_hw[1] % self.heatmap_hw[1] == 0
                      and self.input_hw[0] // self.heatmap_hw[0] == self.input_hw[1] // self.heatmap_hw[1],
                      "input_hw", "(H, W) the same integer multiple of heatmap_hw")
        self._require(self.sigma > 0, "sigma", "a number > 0")
        self._require(self.blur_kernel == 0 or self.blur_kernel % 2 == 1, "blur_kernel", "0 or an odd kernel size")
        self._require(self.padding >= 1, "padding", "a number >= 1")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; see the module docstring for the rules."""

    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    topdown: TopDownConfig = field(default_factory=TopDownConfig)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not isinstance(getattr(self, f.name), f.default_factory):  # type: ignore[arg-type]
                raise ValueError(f"Config.{f.name}: expected a {f.default_factory.__name__}, "  # type: ignore[union-attr]
                                 f"got {type(getattr(self, f.name)).__name__}")
        # Training crops must tile exactly into output cells, or targets and outputs misalign.
        if self.data.crop_size % self.codec.stride:
            raise ValueError(f"data.crop_size: expected a multiple of codec.stride ({self.codec.stride}), "
                             f"got {self.data.crop_size}")


_SECTIONS: dict[str, type[_Section]] = {
    f.name: f.default_factory for f in dataclasses.fields(Config)  # type: ignore[misc]
}


# --------------------------------------------------------------------------- dict forms
def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """A plain nested dict (only dict, list, str, int, float, bool, None): YAML/JSON-safe."""
    return {
        name: {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}  # type: ignore[arg-type]
        for name, section in ((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg))
    }


def _check_keys(data: Any, where: str) -> None:
    """Unknown sections or keys in a (partial) config mapping -> ValueError naming them and ``where``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of sections {sorted(_SECTIONS)}, got {type(data).__name__}")
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ValueError(f"{where}: unknown section {section!r}; valid sections: {', '.join(_SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: section {section!r} must be a mapping, got {values!r}")
        valid = [f.name for f in dataclasses.fields(_SECTIONS[section])]  # type: ignore[arg-type]
        for key in values:
            if key not in valid:
                raise ValueError(f"{where}: unknown key {section}.{key}; valid keys of {section!r}: {', '.join(valid)}")


def _merge(base: dict[str, dict[str, Any]], delta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {name: dict(values) for name, values in base.items()}
    for section, values in delta.items():
        out.setdefault(section, {}).update(values or {})
    return out


def config_from_dict(data: Mapping[str, Any], *, where: str = "config") -> Config:
    """Build a :class:`Config` from a (possibly partial) nested dict, strictly.

    Missing sections/keys take their defaults; unknown ones and wrong types raise ValueError
    (prefixed with ``where``, e.g. the checkpoint's path).
    """
    _check_keys(data, where)
    try:
        return Config(**{
            name: _SECTIONS[name](**(data.get(name) or {}))
            for name in _SECTIONS
        })
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


# ------------------------------------------------------------------------------ loading
def parse_override(text: str) -> tuple[str, str, Any]:
    """``"section.key=value"`` -> (section, key, value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"override {text!r}: expected section.key=value, e.g. train.lr=1e-3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return parts[0], parts[1], value


def _check_types(delta: Mapping[str, Any], where: str) -> None:
    """Type-check each value of a partial config on its own, so errors name their source."""
    for section, values in delta.items():
        hints = typing.get_type_hints(_SECTIONS[section])
        for key, value in (values or {}).items():
            try:
                _coerce(value, hints[key], f"{section}.{key}")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None


def load_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file's deltas (if ``path``), then ``overrides`` in order.

    Unknown keys and wrong types are reported naming the file or the override they come
    from; rules that relate several fields are checked once everything is merged.
    """
    resolved = config_to_dict(Config())
    sources = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            delta = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: not valid YAML ({exc})") from None
        delta = {} if delta is None else delta
        _check_keys(delta, str(p))
        _check_types(delta, str(p))
        resolved = _merge(resolved, delta)
        sources.append(str(p))
    for text in overrides:
        section, key, value = parse_override(text)
        where = f"override {text!r}"
        delta = {section: {key: value}}
        _check_keys(delta, where)
        _check_types(delta, where)
        resolved = _merge(resolved, delta)
    if overrides:
        sources.append("overrides " + " ".join(overrides))
    return config_from_dict(resolved, where=" + ".join(sources) or "defaults")


def save_config(cfg: Config, path: str | os.PathLike[str]) -> Path:
    """Write the full resolved config as YAML, atomically (temp file, fsync, rename)."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
    return write_text_atomic(path, text)


def build_bottomup_codec(codec: CodecConfig):
    """The bottom-up codec a config describes (imported lazily: the codec module pulls in numba)."""
    from openpose_lite.codecs import BottomUpPafCodec

    return BottomUpPafCodec(
        stride=codec.stride,
        sigma=codec.sigma,
        paf_half_width=codec.paf_half_width,
        heatmap_merge=codec.heatmap_merge,
        peak_threshold=codec.peak_threshold,
        refine=codec.refine,
        blur_kernel=codec.blur_kernel,
    )


def build_topdown_codec(topdown: TopDownConfig):
    """The top-down codec a config describes."""
    from openpose_lite.codecs import TopDownHeatmapCodec

    return TopDownHeatmapCodec(
        input_hw=tuple(topdown.input_hw),
        heatmap_hw=tuple(topdown.heatmap_hw),
        sigma=topdown.sigma,
        refine=topdown.refine,
        blur_kernel=topdown.blur_kernel,
        convention=topdown.convention,
    )
