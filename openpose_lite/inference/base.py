"""What both predictors share: construction from weight files, the network runner, ``model``.

``from_weights(path, **options)`` reads any supported weight file once (our checkpoints, and the
foreign layouts of the architecture table; :func:`~openpose_lite.models.weights.read_weights`)
and hands the model and the config it runs with to the subclass's ``from_model``;
``from_checkpoint`` does the same but insists on one of our checkpoints. Options are the
subclass's ``from_model`` keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from openpose_lite.codecs.base import Codec
from openpose_lite.inference.network import NetworkRunner
from openpose_lite.models.architectures import architecture
from openpose_lite.models.weights import LoadedWeights, read_weights
from openpose_lite.skeleton import Skeleton

__all__ = ["Predictor", "load_for_inference", "require_checkpoint"]


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
    return LoadedWeights(ir, architecture(ir.arch), None, dict(ir.config))


def require_checkpoint(path: str | Path, loaded: LoadedWeights) -> None:
    """An openpose_lite checkpoint carries its config; other weight files are loaded as weights."""
    if not loaded.ours:
        raise ValueError(
            f"{path}: not an openpose_lite checkpoint (no config inside; it is {loaded.layout.what}); "
            "load it as weights (from_weights; CLI: --weights)"
        )


class Predictor:
    """Base of :class:`~openpose_lite.inference.bottomup.BottomUpPredictor` and
    :class:`~openpose_lite.inference.topdown.TopDownPredictor`."""

    runner: NetworkRunner
    codec: Codec

    @property
    def skeleton(self) -> Skeleton:
        """The skeleton of what this predictor finds: people, or instances of another skeleton."""
        return self.codec.skeleton

    @classmethod
    def from_model(cls, model: nn.Module, config: Mapping[str, Any] | None, source: str = "model", **options: Any):
        raise NotImplementedError

    @classmethod
    def from_weights(cls, path: str | Path, **options: Any):
        """A predictor from a weights file in any supported layout; ``options`` as for ``from_model``."""
        return cls._from_loaded(path, load_for_inference(path), options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any):
        """A predictor from one of our checkpoints alone: the model and its settings come from its config."""
        loaded = load_for_inference(path)
        require_checkpoint(path, loaded)
        return cls._from_loaded(path, loaded, options)

    @classmethod
    def _from_loaded(cls, path: str | Path, loaded: LoadedWeights, options: dict[str, Any]):
        if Path(path).suffix.lower() == ".xml":  # an OpenVINO IR runs on its runtime
            options.setdefault("backend", "openvino")
        return cls.from_model(loaded.model, loaded.config, str(path), **options)

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
