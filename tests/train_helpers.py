"""What the training tests share: the train_vgg19.py script as a module, tiny scenes and a run of seconds.

Imported as ``from train_helpers import ...`` (tests/ is on the path of the test run, and is the
directory of tests/ddp_worker.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from openpose_lite.data.synthetic import SceneConfig, write_dataset

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "train_vgg19.py"


def load_train_script() -> ModuleType:
    """``train_vgg19.py`` of this checkout as a module (loaded once), without putting the repository on sys.path."""
    module = sys.modules.get("train_vgg19")
    if module is None:
        spec = importlib.util.spec_from_file_location("train_vgg19", TRAIN_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["train_vgg19"] = module
        spec.loader.exec_module(module)
    return module


def write_tiny_scenes(root: Path) -> dict[str, Path]:
    """Small generated sets: 8 training and 2 validation scenes of 96 x 96 px with one or two people."""
    cfg = SceneConfig(image_hw=(96, 96), people_range=(1, 2), person_height_range=(0.5, 0.9))
    write_dataset(root / "train", 8, seed=1, cfg=cfg)
    write_dataset(root / "val", 2, seed=2, cfg=cfg)
    return {"train": root / "train", "val": root / "val"}


def tiny_args(scenes: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """Overrides for a run of seconds: 8 images of 96 px, 64 px crops, batch 4 (2 steps per epoch)."""
    return [
        "--output-dir", str(out), "--no-progress",
        f"data.train_ann={scenes['train'] / 'annotations.json'}", f"data.train_images={scenes['train'] / 'images'}",
        f"data.val_ann={scenes['val'] / 'annotations.json'}", f"data.val_images={scenes['val'] / 'images'}",
        "data.crop_size=64", "data.num_workers=0", "codec.input_size=64",
        "model.num_stages=2", "model.stage_channels=8", "model.width_mult=0.125",
        "train.batch_size=4", "train.device=cpu", "train.amp=false", "train.eval_every=0", "train.log_every=1",
        "train.val_max_images=2", *extra,
    ]
