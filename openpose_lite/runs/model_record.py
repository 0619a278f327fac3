"""Which model a folder of run outputs is of: :class:`ModelRecord`, kept beside the index as
:data:`MODEL_RECORD`. A folder's outputs are one model's (``results_coco.json`` puts every result under
one category), so ``--append`` adds only that model's outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from openpose_lite.io import files_sha256, write_json_atomic
from openpose_lite.skeleton import Skeleton

__all__ = ["MODEL_RECORD", "RESULTS_CATEGORY_ID", "ModelRecord", "weights_digest"]

# The category results_coco.json's results are under (COCO's person): one per folder, since a
# folder holds one model's outputs, and its record says which skeleton they are of.
RESULTS_CATEGORY_ID = 1
# The record's name in the folder: unmistakably ours (a user's own "model.json" there is never
# read, replaced or removed), and not an output (no run is made of it alone).
MODEL_RECORD = "openpose-lite-model.json"
_KINDS = {"weights": str, "weights_sha256": str, "skeleton": str, "keypoints": list, "category_id": int}
_RECORD_KEYS = ("written_by", *_KINDS)


def weights_digest(path: Path) -> str:
    """SHA-256 (hex) of a weights file's bytes; an OpenVINO IR's: its .xml's, then its .bin's."""
    return files_sha256((path, path.with_suffix(".bin")) if path.suffix.lower() == ".xml" else (path,), "weights file")


@dataclass(frozen=True)
class ModelRecord:
    """Which model a folder's outputs are of: its weights file (path, SHA-256 of its content), the skeleton of
    its results (name, keypoint names in ``results_coco.json``'s order) and their category id. Two runs are of
    the same model when everything but the weights file's path agrees (a copy is the same model; a retrained
    ``last.pt`` in the same place is not); how a run used it (scales, flip, precision ...) is not part of it."""

    weights: str
    weights_sha256: str
    skeleton: str
    keypoints: tuple[str, ...]
    category_id: int

    @classmethod
    def of(cls, weights: Path, skeleton: Skeleton) -> "ModelRecord":
        """The record of a run of the weights file ``weights`` whose predictor finds ``skeleton`` (either layout)."""
        layout = skeleton.annotation_layout()  # what results_coco.json holds: COCO-17 for any person model
        return cls(str(weights.resolve()), weights_digest(weights), layout.name, layout.keypoints, RESULTS_CATEGORY_ID)

    def keep_in(self, folder: Path) -> None:
        """Write this record into ``folder`` unless it holds one (of this model, as checked before the run)."""
        record = folder / MODEL_RECORD
        if not (record.is_symlink() or record.exists()):
            write_json_atomic(record, {"written_by": "openpose-lite infer", **asdict(self)}, indent=1)

    @classmethod
    def from_dict(cls, data: object, source: str) -> "ModelRecord":
        """The record :meth:`keep_in` wrote; raises ValueError naming ``source`` and the field that is wrong."""
        if not isinstance(data, dict) or sorted(data) != sorted(_RECORD_KEYS):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source}: expected a model record with keys {list(_RECORD_KEYS)}, got {keys}")
        for key, kind in _KINDS.items():
            if not isinstance(data[key], kind) or isinstance(data[key], bool):
                raise ValueError(f"{source}: {key}: expected {kind.__name__}, got {type(data[key]).__name__}")
        if not all(isinstance(name, str) for name in data["keypoints"]):
            raise ValueError(f"{source}: keypoints: expected a list of keypoint names")
        return cls(**{**{key: data[key] for key in _KINDS}, "keypoints": tuple(data["keypoints"])})

    def describe(self) -> str:
        """``/runs/a/best.pt (skeleton coco17, 17 keypoints, category_id 1, sha256 0123456789ab)``."""
        return (f"{self.weights} (skeleton {self.skeleton}, {len(self.keypoints)} keypoints, category_id "
                f"{self.category_id}, sha256 {self.weights_sha256[:12]})")

    def difference(self, other: "ModelRecord") -> str | None:
        """How ``other`` is another model than this one, in words; None when it is this one."""
        if (self.skeleton, self.keypoints) != (other.skeleton, other.keypoints):
            return "another skeleton"
        if self.category_id != other.category_id:
            return "another category"
        if self.weights_sha256 != other.weights_sha256:
            return "other weights"
        return None
