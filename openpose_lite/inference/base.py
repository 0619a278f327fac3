"""What every predictor shares, and the one function that builds a predictor: :func:`build_predictor`.

:func:`build_predictor` takes loaded weights (:class:`~openpose_lite.models.weights.LoadedWeights`)
and :class:`PredictorOptions`; the architecture's branch (:mod:`openpose_lite.branches`) gives the
codec and the predictor class. Every entry point (the command line, ``eval``, ``bench``, ``export``,
training's AP) builds its predictors through it; ``from_weights`` and ``from_checkpoint`` read a file
(:func:`load_for_inference`) and call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from openpose_lite.codecs.base import Codec
from openpose_lite.config import config_from_dict
from openpose_lite.inference.boxes import BoxSource
from openpose_lite.inference.network import NetworkRunner, make_runner
from openpose_lite.inference.openvino_model import IrModel
from openpose_lite.architectures import architecture
from openpose_lite.models.weights import LoadedWeights, read_weights
from openpose_lite.preprocess import InputBound, input_normaliser
from openpose_lite.skeleton import Skeleton

__all__ = ["Predictor", "PredictorOptions", "build_predictor", "load_for_inference", "require_checkpoint"]


def load_for_inference(path: str | Path) -> LoadedWeights:
    """Any weights file a predictor runs: those :func:`~openpose_lite.models.weights.read_weights` reads, and
    OpenVINO IR files (``.xml``) that ``openpose-lite export --format openvino`` wrote (their config and
    skeleton inside; they run with backend openvino)."""
    if Path(path).suffix.lower() != ".xml":
        return read_weights(path)
    from openpose_lite.inference.openvino_model import read_ir

    ir = read_ir(path)
    if ir.foreign or ir.arch is None or ir.config is None:
        raise ValueError(f"{path}: an OpenVINO IR without openpose_lite's settings (config, skeleton) inside; "
                         "export one with 'openpose-lite export --format openvino'")
    return LoadedWeights(ir, architecture(ir.arch), None, config_from_dict(ir.config, where=f"{path} config"), str(path))


def require_checkpoint(path: str | Path, loaded: LoadedWeights) -> None:
    """An openpose_lite checkpoint carries its config; other weight files are loaded as weights."""
    if not loaded.ours:
        raise ValueError(
            f"{path}: not an openpose_lite checkpoint (no config inside; it is {loaded.layout.what}); "
            "load it as weights (from_weights; CLI: --weights)"
        )


@dataclass(frozen=True)
class PredictorOptions:
    """How to run a loaded network; ``None`` keeps the weights' own setting.

    ``device``, ``precision`` (``None``: an IR's, else fp32), ``backend`` (``None``: openvino for an IR, else
    torch), ``calibration``: as :func:`~openpose_lite.inference.network.make_runner` takes them.
    ``codec_overrides``: codec field -> value; ``flip``: the flip test (``None``: top-down its config's, bottom-up
    off). Bottom-up: ``input_size`` (``None``: ``codec.input_size``), ``scales``, ``input_bound``. Top-down:
    ``batch_size`` (``None``: 32) and ``boxes`` (codec -> box source: the result is then a
    :class:`~openpose_lite.inference.topdown.TopDownPipeline`, which takes whole images).
    """

    device: Any = None
    precision: str | None = None
    backend: str | None = None
    calibration: Any = None
    codec_overrides: Mapping[str, Any] = field(default_factory=dict)
    flip: bool | None = None
    input_size: int | None = None
    scales: Sequence[float] = (1.0,)
    input_bound: InputBound | None = None
    batch_size: int | None = None
    boxes: Callable[[Codec], BoxSource] | None = None


def build_predictor(loaded: LoadedWeights, options: PredictorOptions = PredictorOptions()) -> Any:
    """The predictor of loaded weights: its branch's predictor class, codec and settings from the
    weights' config, ``options`` on top; a ValueError names an option the network or codec cannot take."""
    row = loaded.architecture.branch_row
    codec = row.build_codec(loaded.config, skeleton=getattr(loaded.model, "skeleton", None))
    if options.codec_overrides:
        known = {f.name for f in dataclasses.fields(codec)}
        unknown = sorted(set(options.codec_overrides) - known)
        if unknown:
            raise ValueError(f"codec_overrides: unknown codec fields {unknown}; valid: {sorted(known)}")
        codec = dataclasses.replace(codec, **dict(options.codec_overrides))
    options = dataclasses.replace(  # an IR runs on its own runtime, in the precision it was written in
        options, backend=options.backend or ("openvino" if isinstance(loaded.model, IrModel) else "torch"),
        precision=options.precision or getattr(loaded.model, "precision", "fp32"))
    return row.predictor_class.from_config(loaded.model, codec, loaded.config, options)


class Predictor:
    """Base of the predictors (:class:`~openpose_lite.inference.bottomup.BottomUpPredictor`,
    :class:`~openpose_lite.inference.topdown.TopDownPredictor`): the network runner and the codec.

    A branch's predictor also has ``from_config(model, codec, cfg, options)`` (the classmethod
    build_predictor calls), ``calibration_set(source)`` (int8 calibration images prepared as its
    inputs), ``example_input_hw`` (a size export traces) and ``describe()`` (its settings in words).
    """

    runner: NetworkRunner
    codec: Codec
    input_norm: str
    PHASES: tuple[str, ...]  # the keys of ``timings``: seconds per phase of the last call

    @property
    def skeleton(self) -> Skeleton:
        """The skeleton of what this predictor finds: people, or instances of another skeleton."""
        return self.codec.skeleton

    @property
    def output_names(self) -> tuple[str, ...]:
        """The maps the network returns, in the codec's order (its ``channels()``)."""
        return tuple(self.codec.channels())

    def _take_codec(self, codec: Codec, expected: type[Codec]) -> None:
        """The start of a predictor's ``__init__``: its codec, refused when of another branch."""
        if not isinstance(codec, expected):
            raise ValueError(f"codec: expected a {expected.__name__}, got {type(codec).__name__}")
        self.codec = codec

    def _start(self, model: nn.Module, device: Any, precision: str, backend: str, calibration: Any) -> None:
        """The end of a predictor's ``__init__``: the network checked against the codec and the input
        normalisation by name, both before any conversion, then the runner."""
        self.codec.check_model(model)
        input_normaliser(self.input_norm)
        self.timings = dict.fromkeys(self.PHASES, 0.0)
        self.runner = make_runner(model, self.output_names, device, precision, backend=backend,
                                  calibration=self.calibration_set(calibration))

    def _runtime_words(self) -> str:
        """``"fp32"``, or ``"int8, openvino"`` on the OpenVINO backend (torch, the default, goes unsaid)."""
        backend = getattr(self.runner, "backend", "torch")
        return self.runner.precision + ("" if backend == "torch" else f", {backend}")

    @classmethod
    def from_weights(cls, path: str | Path, **options: Any):
        """A predictor from a weights file in any supported layout; ``options``: :class:`PredictorOptions` fields."""
        return cls._built(load_for_inference(path), options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any):
        """A predictor from one of our checkpoints alone: the model and its settings come from its config."""
        loaded = load_for_inference(path)
        require_checkpoint(path, loaded)
        return cls._built(loaded, options)

    @classmethod
    def _built(cls, loaded: LoadedWeights, options: dict[str, Any]):
        row = loaded.architecture
        runs_it = row.branch_row.predictor_class
        if not issubclass(runs_it, cls):
            raise ValueError(f"{loaded.source}: {row.title} ({row.name}) is a {row.branch_row.title} model, which "
                             f"{runs_it.__name__} runs, not {cls.__name__}")
        return build_predictor(loaded, PredictorOptions(**options))

    @property
    def model(self) -> nn.Module:
        """The network (replaceable: assigning a module moves it to the predictor's device)."""
        return self.runner.model

    @model.setter
    def model(self, module: nn.Module) -> None:
        self.runner.model = module.to(self.runner.device).eval()

    @property
    def device(self):
        return self.runner.device
