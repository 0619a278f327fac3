"""Which network a config describes: :class:`ModelConfig` (the ``model`` section) and :func:`build_model`.

A ``model`` section is checked against its row of :mod:`openpose_lite.architectures` and built through
it; torch is imported only when a model is built.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from openpose_lite.architectures import ARCHITECTURES, INPUT_NORMS, architecture, resolve
from openpose_lite.network_settings import NetworkSettings
from openpose_lite.params import Params
from openpose_lite.skeleton import Skeleton

logger = logging.getLogger(__name__)

__all__ = ["ModelConfig", "build_model", "model_fields"]

_NAMES = frozenset(a.name for a in ARCHITECTURES)
_OWN_KEYS = ("arch", "init", "input_norm")


@dataclass(frozen=True)
class ModelConfig(Params):
    """The ``model`` config section: ``arch``, a row of the architecture table, and ``settings``, an
    instance of its row's settings class (``None``: its defaults, the published network's).

    ``init``: how the bottom-up networks' convs start: ``cmu`` (the published recipes', for a pretrained
    trunk) or ``kaiming`` (He-normal, for training from scratch with Adam). ``input_norm``: one of
    :data:`~openpose_lite.architectures.INPUT_NORMS`; ``None``: the architecture's own. In the dict form
    (YAML, checkpoints) the settings' fields sit beside ``arch``: ``{arch: hrnet, width: 32, blocks: 4, ...}``.
    """

    _section: typing.ClassVar[str] = "model"

    arch: str = "vgg19_paf"
    init: Literal["cmu", "kaiming"] = "cmu"
    input_norm: str | None = None
    settings: NetworkSettings | None = None

    def __post_init__(self) -> None:
        if self.settings is None and isinstance(self.arch, str) and self.arch in _NAMES:
            object.__setattr__(self, "settings", architecture(self.arch).settings())
        super().__post_init__()

    def _check(self) -> None:
        self._require(self.arch in _NAMES, "arch", f"one of {', '.join(a.name for a in ARCHITECTURES)}")
        own = architecture(self.arch).settings
        self._require(type(self.settings) is own, "settings", f"a {own.__name__} (the settings of {self.arch})")
        self._require(self.input_norm is None or self.input_norm in INPUT_NORMS, "input_norm",
                      f"null (the architecture's own) or one of {', '.join(INPUT_NORMS)}")

    @property
    def resolved_input_norm(self) -> str:
        """The input normalisation the network runs with: ``input_norm``, else its architecture's."""
        return self.input_norm or architecture(self.arch).input_norm

    def to_dict(self) -> dict[str, Any]:
        """The plain dict form."""
        return {"arch": self.arch, **dataclasses.asdict(self.settings), "init": self.init,  # type: ignore[arg-type]
                "input_norm": self.input_norm}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """The section of its dict form (missing keys: the defaults). A key that is no setting of the
        ``arch`` named (default ``vgg19_paf``) is a ValueError naming the arch and its keys."""
        arch = values.get("arch", cls.arch)
        own = {k: v for k, v in values.items() if k in _OWN_KEYS}
        if not (isinstance(arch, str) and arch in _NAMES):
            return cls(**own)  # refused, naming the known architectures
        keys = model_fields(arch)
        unknown = [k for k in values if k not in keys]
        if unknown:
            raise ValueError(f"model.{unknown[0]}: not a setting of {arch}; its model keys: {', '.join(keys)}")
        settings = {k: v for k, v in values.items() if k not in _OWN_KEYS}
        return cls(settings=architecture(arch).settings(**settings), **own)


def model_fields(arch: Any = None) -> dict[str, Any]:
    """``{key: annotation}`` of the ``model`` section's dict form for ``arch``: ``arch``, its settings'
    fields, ``init``, ``input_norm``; every network's settings (table order) when ``arch`` names none."""
    hints = typing.get_type_hints(ModelConfig)
    fields = {"arch": hints["arch"]}
    rows = [architecture(arch)] if isinstance(arch, str) and arch in _NAMES else ARCHITECTURES
    for row in rows:
        settings = typing.get_type_hints(row.settings)
        fields.update({f.name: settings[f.name] for f in dataclasses.fields(row.settings) if f.name not in fields})
    return {**fields, "init": hints["init"], "input_norm": hints["input_norm"]}


def build_model(cfg: ModelConfig, skeleton: Skeleton | None = None) -> Any:
    """An untrained network of ``cfg``'s architecture for ``skeleton`` in its branch's layout (default: the
    branch's person), which the network carries as ``model.skeleton`` for codecs, checkpoints and exports."""
    row = architecture(cfg.arch)
    skeleton = skeleton or row.branch_row.person_skeleton
    model = resolve(row.build)(cfg, skeleton)
    if getattr(model, "skeleton", None) is None:
        model.skeleton = skeleton  # the top-down networks take a keypoint count; the skeleton travels beside it
    logger.debug("built %s (%s) for %s: %d parameters", cfg.arch, cfg.settings, skeleton.name,
                 sum(p.numel() for p in model.parameters()))
    return model

