"""Typed, frozen configuration: YAML deltas -> dataclasses -> plain dicts inside checkpoints.

Each of the six sections is the parameter dataclass of the code that uses it (or derives from it):

=========== ==================================================================================
``model``    :class:`~openpose_lite.factory.ModelConfig` (which network, and its own settings)
``codec``    :class:`~openpose_lite.codecs.bottomup.BottomUpCodecParams` + ``input_size``
``grouping`` :class:`~openpose_lite.codecs.grouping.GroupingParams` (bottom-up person assembly)
``data``     :class:`~openpose_lite.transforms.AugmentParams` + datasets and loading
``train``    :class:`~openpose_lite.train_config.TrainConfig` (optimisation, checkpoints, devices)
``topdown``  :class:`~openpose_lite.codecs.topdown.TopDownCodecParams` +
             :class:`~openpose_lite.transforms.TopDownAugmentParams` + ``flip_test``
=========== ==================================================================================

YAML files hold only the *deltas* from those defaults (``train: {lr: 1.0e-4, epochs: 20}``); overrides
are ``section.key=value`` with a YAML value (``train.step_milestones=[30,60]``, ``data.train_ann=null``).
Every source (code, file, override, a checkpoint's config) is checked by :class:`~openpose_lite.params.Params`
alike; errors name the key and its file or override.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from openpose_lite.codecs.bottomup import BottomUpCodecParams, BottomUpPafCodec
from openpose_lite.codecs.grouping import GroupingParams
from openpose_lite.codecs.topdown import TopDownCodecParams, TopDownHeatmapCodec
from openpose_lite.transforms import AugmentParams, TopDownAugmentParams
from openpose_lite.images import DEFAULT_MAX_IMAGE_PIXELS, check_max_pixels
from openpose_lite.bounded_yaml import YamlTooLargeError, parse_yaml
from openpose_lite.io import MAX_CONFIG_BYTES, read_bounded, write_text_atomic
from openpose_lite.architectures import architecture, architectures
from openpose_lite.factory import ModelConfig, model_fields
from openpose_lite.network_settings import HourglassSettings, HRNetSettings
from openpose_lite.params import Params, brief, coerce, fields_of
from openpose_lite.skeleton import COCO_17, OPENPOSE_18, Skeleton
from openpose_lite.train_config import TrainConfig

__all__ = ["CodecConfig", "Config", "DataConfig", "GroupingParams", "ModelConfig", "TopDownConfig", "TrainConfig",
           "build_bottomup_codec", "build_topdown_codec", "config_from_dict", "config_to_dict", "load_config",
           "parse_override", "save_config"]


# Bounds on the settings that size memory, so that a crafted config or checkpoint is refused
# when it is loaded rather than exhausting memory later (the paper's values are far below them).
MAX_STRIDE = 64
MAX_INPUT_SIZE = 2048  # network input height (CMU's largest documented test size is 656)
MAX_CROP_SIZE = 2048
MAX_TOPDOWN_SIDE = 1024  # HRNet's largest published crop is 384x288


# ----------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class CodecConfig(BottomUpCodecParams):
    """The ``codec`` section: the bottom-up codec's settings, ``input_size``, the network input
    height at inference (the image is letterboxed to it; CMU: 368), and ``report_shift``, pixels
    added to every reported keypoint's x and y (0 for our networks; Lightweight OpenPose files
    report as their reference's evaluation does, half a pixel on: docs/architecture.md)."""

    input_size: int = 368
    report_shift: float = 0.0

    def _check(self) -> None:
        self._require(math.isfinite(self.report_shift), "report_shift", "a finite number of pixels")
        self._require(self.stride <= MAX_STRIDE, "stride", f"an integer in [1, {MAX_STRIDE}]")
        self._require(self.stride <= self.input_size <= MAX_INPUT_SIZE and self.input_size % self.stride == 0,
                      "input_size", f"a multiple of codec.stride ({self.stride}) in [{self.stride}, {MAX_INPUT_SIZE}]")


@dataclass(frozen=True)
class DataConfig(AugmentParams):
    """The ``data`` section: COCO-format datasets, and the bottom-up augmentation it derives from.

    Without ``val_ann``, ``val_split`` of the training images with a labelled instance (at least one,
    drawn with ``train.seed``) is held out for validation; 0: none. ``synthetic`` without ``train_ann``:
    generated stick-figure scenes, written into the output directory. ``max_image_pixels``: the largest
    image (width x height) read; ``images_anywhere``: a ``file_name`` may be absolute or climb out with
    ``..``. ``skeleton``: a keypoint file whose category gives the skeleton (default: the training file's).
    """

    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    val_split: float = 0.1
    synthetic: bool = False
    synthetic_train_images: int = 2000
    synthetic_val_images: int = 200
    num_workers: int = 2
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    images_anywhere: bool = False
    skeleton: str | None = None

    def _check(self) -> None:
        self._require(self.crop_size <= MAX_CROP_SIZE, "crop_size", f"an integer in [1, {MAX_CROP_SIZE}]")
        check_max_pixels(self.max_image_pixels, "data.max_image_pixels")
        for name, low in (("synthetic_train_images", 1), ("synthetic_val_images", 1), ("num_workers", 0)):
            self._require(getattr(self, name) >= low, name, f"an integer >= {low}")
        self._require(0 <= self.val_split < 1, "val_split",
                      "a fraction in [0, 1) of the training images held out for validation (0: none)")
        for ann, images in (("train_ann", "train_images"), ("val_ann", "val_images")):
            if (getattr(self, ann) is None) != (getattr(self, images) is None):
                raise ValueError(f"data.{ann} and data.{images} must be given together, "
                                 f"got {getattr(self, ann)!r} and {getattr(self, images)!r}")


@dataclass(frozen=True)
class TopDownConfig(TopDownCodecParams, TopDownAugmentParams):
    """The ``topdown`` section: the top-down codec's settings, the HRNet augmentation (which also gives
    the crop ``padding``), and ``flip_test``: average with the mirrored crop at evaluation."""

    flip_test: bool = True

    def _check(self) -> None:
        self._require(max(self.input_hw) <= MAX_TOPDOWN_SIDE, "input_hw", f"a crop with sides <= {MAX_TOPDOWN_SIDE}")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    grouping: GroupingParams = field(default_factory=GroupingParams)
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


_SECTIONS: dict[str, type[Params]] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


# --------------------------------------------------------------------------- dict forms
def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """A plain nested dict (only dict, list, str, int, float, bool, None): YAML/JSON-safe."""
    return {
        name: section.to_dict() if isinstance(section, ModelConfig) else
        {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}  # type: ignore[arg-type]
        for name, section in ((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg))
    }


def _keys_of(section: str, values: Any = None) -> list[str]:
    """A section's keys; the ``model`` section's: the network's that ``values`` names (any network's if none)."""
    if section == "model":
        return list(model_fields(values.get("arch") if isinstance(values, Mapping) else None))
    return [f.name for f in dataclasses.fields(_SECTIONS[section])]  # type: ignore[arg-type]


def _did_you_mean(section: str | None, key: str, values: Any = None) -> str:
    """``did you mean data.crop_size? `` for a key of another section or a near spelling ("" for none)."""
    if section is None:
        near = difflib.get_close_matches(key, list(_SECTIONS), n=1, cutoff=0.6)
        return f"did you mean {near[0]!r}? " if near else ""
    elsewhere = [f"{other}.{key}" for other in _SECTIONS if other != section and key in _keys_of(other)]
    near = elsewhere or [f"{section}.{k}" for k in
                         difflib.get_close_matches(key, _keys_of(section, values), n=1, cutoff=0.6)]
    return f"did you mean {near[0]}? " if near else ""


def _check_keys(data: Any, where: str) -> None:
    """Unknown sections or keys in a (partial) config mapping -> ValueError naming them, ``where`` and
    :func:`_did_you_mean`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of sections {sorted(_SECTIONS)}, got {type(data).__name__}")
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ValueError(f"{where}: unknown section {section!r}; {_did_you_mean(None, str(section))}"
                             f"valid sections: {', '.join(_SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: section {section!r} must be a mapping, got {brief(values)}")
        valid = _keys_of(section, values)
        for key in values:
            if key not in valid:
                raise ValueError(f"{where}: unknown key {section}.{key}; {_did_you_mean(section, str(key), values)}"
                                 f"valid keys of {section!r}: {', '.join(valid)}")


def _merge(base: dict[str, dict[str, Any]], delta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {name: dict(values) for name, values in base.items()}
    for section, values in delta.items():
        out.setdefault(section, {}).update(values or {})
    return out


# Keys of the flat ``model`` section stored by earlier releases (every network's keys in one section).
_FLAT_MODEL_KEYS = ("num_stages", "stage_channels", "width_mult", "hrnet_width", "hrnet_blocks", "depth")
_RENAMED_MODEL_KEYS = {HRNetSettings: {"hrnet_width": "width", "hrnet_blocks": "blocks"},
                       HourglassSettings: {"num_stages": "stacks"}}


def upgrade_stored_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config dict in earlier keys -> today's (YAML files are not upgraded).

    The flat ``model`` section keeps its network's keys (:data:`_RENAMED_MODEL_KEYS`); ``sigma`` ->
    ``sigma_px`` (top-down: heatmap cells -> crop pixels); ``topdown.flip_shift`` is dropped (our
    convention); no ``data.val_split``: 0, as such runs held nothing out.
    """
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    model = out.get("model")
    arch = model.get("arch", ModelConfig.arch) if isinstance(model, dict) else None
    if isinstance(arch, str) and arch in {a.name for a in architectures()}:
        for old, new in _RENAMED_MODEL_KEYS.get(architecture(arch).settings, {}).items():
            if old in model and new not in model:
                model[new] = model.pop(old)
        for key in set(_FLAT_MODEL_KEYS) - set(model_fields(arch)):
            model.pop(key, None)
    section = out.get("data")
    if isinstance(section, dict) and "train_ann" in section and "val_split" not in section:
        section["val_split"] = 0.0
    codec = out.get("codec")
    if isinstance(codec, dict) and "sigma" in codec and "sigma_px" not in codec:
        codec["sigma_px"] = codec.pop("sigma")
    topdown = out.get("topdown")
    if isinstance(topdown, dict):
        topdown.pop("flip_shift", None)
        if "sigma" in topdown and "sigma_px" not in topdown:
            defaults = TopDownConfig()
            input_h = (topdown.get("input_hw") or defaults.input_hw)[0]
            heatmap_h = (topdown.get("heatmap_hw") or defaults.heatmap_hw)[0]
            topdown["sigma_px"] = float(topdown.pop("sigma")) * (int(input_h) // max(int(heatmap_h), 1))
    return out


def config_from_dict(data: Mapping[str, Any], *, where: str = "config") -> Config:
    """A :class:`Config` from a (possibly partial) nested dict, such as a checkpoint's, upgraded first
    (:func:`upgrade_stored_config`). Missing keys take their defaults; unknown ones and wrong types
    raise ValueError prefixed with ``where``."""
    return _config_of(upgrade_stored_config(data) if isinstance(data, Mapping) else data, where)


def _config_of(data: Any, where: str) -> Config:
    """:func:`config_from_dict` of a dict in today's keys (YAML files and overrides are not upgraded)."""
    _check_keys(data, where)
    try:
        sections = {name: data.get(name) or {} for name in _SECTIONS}
        return Config(model=ModelConfig.from_dict(sections.pop("model")),
                      **{name: _SECTIONS[name](**values) for name, values in sections.items()})
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
    return parts[0], parts[1], _parse(raw, f"override {text!r}") if raw.strip() else None


def _parse(text: str, where: str) -> Any:
    """:func:`~openpose_lite.bounded_yaml.parse_yaml`, its errors a ValueError naming ``where``."""
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML ({exc})") from None
    except YamlTooLargeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_delta(delta: Any, where: str) -> None:
    """:func:`_check_keys`, then each value type-checked on its own, so errors name their source."""
    _check_keys(delta, where)
    for section, values in delta.items():
        hints = model_fields((values or {}).get("arch")) if section == "model" else typing.get_type_hints(_SECTIONS[section])
        for key, value in (values or {}).items():
            try:
                coerce(value, hints[key], f"{section}.{key}")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None


# A config file may start from another one: ``extends: other.yaml`` (relative to the file).
EXTENDS_KEY = "extends"


def _file_deltas(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The deltas of ``path`` and of the files it extends, the furthest first, each checked."""
    try:  # a regular file of bounded size: a FIFO or /dev/zero is refused, not read
        text = read_bounded(path, "config file", MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}" + (f" (extended by {chain[-1]})" if chain else "")) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file, expected a YAML config") from None
    if path.resolve() in chain:
        raise ValueError(f"{path}: '{EXTENDS_KEY}' loops back to a file it extends ({' -> '.join(map(str, chain))})")
    delta = _parse(text, str(path))
    delta = {} if delta is None else delta
    base: list[tuple[Path, dict[str, Any]]] = []
    if isinstance(delta, Mapping) and EXTENDS_KEY in delta:
        delta = dict(delta)
        parent = delta.pop(EXTENDS_KEY)
        if not isinstance(parent, str) or not parent:
            raise ValueError(f"{path}: '{EXTENDS_KEY}' must name a config file, got {brief(parent)}")
        base = _file_deltas(path.parent / parent, (*chain, path.resolve()))
    _check_delta(delta, str(path))
    return [*base, (path, delta)]


def load_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = (),
                base: Mapping[str, Any] | None = None, base_where: str = "defaults") -> Config:
    """Defaults (or ``base``, e.g. a checkpoint's stored config), then the YAML file's deltas (after those
    of the file it ``extends``), then ``overrides`` in order. Without ``base``, the ``published`` settings
    of the architecture named come first. Rules relating several fields are checked once merged.
    """
    deltas: list[dict[str, Any]] = []
    sources = [] if base is None else [base_where]
    if path is not None:
        for p, delta in _file_deltas(Path(path)):
            deltas.append(delta)
            sources.append(str(p))
    for text in overrides:
        section, key, value = parse_override(text)
        deltas.append({section: {key: value}})
        _check_delta(deltas[-1], f"override {text!r}")
    if overrides:
        sources.append("overrides " + " ".join(overrides))
    if base is None:
        arch = next((d["model"]["arch"] for d in reversed(deltas) if "arch" in (d.get("model") or {})), ModelConfig.arch)
        try:  # missing keys: the defaults, those of the arch's settings
            resolved = _merge({}, architecture(arch).published)
        except ValueError:  # an unknown architecture: the merged config names it as an error
            resolved = {}
    else:
        resolved = config_to_dict(config_from_dict(base, where=base_where))
    for delta in deltas:
        resolved = _merge(resolved, delta)
    try:
        return _config_of(resolved, where="")
    except ValueError as exc:
        # A value refused by its section's rules names the override that set it, when one did.
        message = str(exc).removeprefix(": ")
        named = re.match(r"(\w+)\.(\w+):", message)
        setter = next((t for t in reversed(overrides) if named and parse_override(t)[:2] == named.groups()), None)
        where = f"override {setter!r}" if setter else " + ".join(sources) or "defaults"
        raise ValueError(f"{where}: {message}") from None


def save_config(cfg: Config, path: str | os.PathLike[str]) -> Path:
    """Write the full resolved config as YAML, atomically (temp file, fsync, rename)."""
    return write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None))


def build_bottomup_codec(cfg: Config | None = None, skeleton: Skeleton = OPENPOSE_18) -> BottomUpPafCodec:
    """The bottom-up codec of a config's ``codec`` and ``grouping`` sections (None: the defaults), for
    ``skeleton``'s bottom-up layout (OPENPOSE_18 for COCO_17). Every bottom-up decode uses it."""
    cfg = cfg or Config()
    return BottomUpPafCodec.from_params(cfg.codec, skeleton=skeleton.bottomup_layout(), grouping=cfg.grouping)


def build_topdown_codec(cfg: Config | None = None, skeleton: Skeleton = COCO_17) -> TopDownHeatmapCodec:
    """The top-down codec of a config's ``topdown`` section (None: the defaults), for ``skeleton``'s
    annotation layout (COCO_17 for OPENPOSE_18)."""
    cfg = cfg or Config()
    return TopDownHeatmapCodec(**fields_of(cfg.topdown, TopDownCodecParams), skeleton=skeleton.annotation_layout())
