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

from openpose_lite.inference.network import NetworkRunner
from openpose_lite.models.weights import LoadedWeights, read_weights

__all__ = ["Predictor", "require_checkpoint"]


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

    @classmethod
    def from_model(cls, model: nn.Module, config: Mapping[str, Any] | None, source: str = "model", **options: Any):
        raise NotImplementedError

    @classmethod
    def from_weights(cls, path: str | Path, **options: Any):
        """A predictor from a weights file in any supported layout; ``options`` as for ``from_model``."""
        loaded = read_weights(path)
        return cls.from_model(loaded.model, loaded.config, str(path), **options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any):
        """A predictor from one of our checkpoints alone: the model and its settings come from its config."""
        loaded = read_weights(path)
        require_checkpoint(path, loaded)
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
