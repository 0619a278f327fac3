"""Shared test fixtures: the COCO sample's location, a tiny bottom-up checkpoint, generated scenes and videos,
and :func:`import_optional`, the one way a test takes an optional dependency.

The real COCO sample lives beside the checkout in ``../shared/data/coco_sample`` (see its
README); it is never copied into the repository, and every test that needs it skips with
the one reason below when it is absent.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch

from openpose_lite.config import CodecConfig, Config, ModelConfig, TopDownConfig, config_to_dict
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.network_settings import HRNetSettings, PafSettings
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.training.checkpoint import save_checkpoint

COCO_SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_sample"
COCO_SAMPLE_ANN = COCO_SAMPLE_DIR / "person_keypoints.json"
COCO_SAMPLE_VAL_ANN = COCO_SAMPLE_DIR / "person_keypoints_val2017only.json"
COCO_SAMPLE_IMAGES = COCO_SAMPLE_DIR / "images"
SKIP_REASON = "the COCO sample (../shared/data/coco_sample) is not available"

needs_coco_sample = pytest.mark.skipif(not COCO_SAMPLE_VAL_ANN.is_file(), reason=SKIP_REASON)

# Non-human COCO-format sets (AP-10K, MacaquePose, Animal-Pose samples; see their README).
CUSTOM_SKELETONS_DIR = COCO_SAMPLE_DIR.parent / "custom_skeletons"
CUSTOM_SKELETON_FILES = {
    "ap10k": CUSTOM_SKELETONS_DIR / "ap10k" / "test_ap10k.json",
    "macaque": CUSTOM_SKELETONS_DIR / "macaque" / "test_macaque.json",
    "animalpose": CUSTOM_SKELETONS_DIR / "animalpose" / "test_animalpose.json",
}
needs_custom_skeletons = pytest.mark.skipif(
    not all(p.is_file() for p in CUSTOM_SKELETON_FILES.values()),
    reason="the non-human COCO-format sets (../shared/data/custom_skeletons) are not available")


# What makes each optional dependency of the tests importable (the skip reason says it).
_INSTALL = {
    "torchvision": "install the torchvision build that goes with the installed torch, from the same index (README, Set up)",
    "onnx": "pip install 'openpose-lite[onnx]'",
    "onnxruntime": "pip install 'openpose-lite[onnx]'",
    "openvino": "pip install 'openpose-lite[openvino]'",
    "nncf": "pip install 'openpose-lite[openvino]'",
    "motmetrics": "pip install 'openpose-lite[track]'",
    "tensorboard": "pip install 'openpose-lite[tensorboard]'",
    "starlette": "pip install 'openpose-lite[serve]'",
    "uvicorn": "pip install 'openpose-lite[serve]'",
    "httpx2": "pip install -e '.[dev]' (the test client)",
    "playwright": "pip install -e '.[dev]' (the browser test drives the system's Chromium with it)",
    "ray": "pip install 'openpose-lite[ray]'",
    "ray.data": "pip install 'openpose-lite[ray]'",
}


def import_optional(name: str) -> ModuleType:
    """The optional dependency ``name`` (a key of ``_INSTALL``: torchvision, onnx, onnxruntime,
    openvino, nncf, motmetrics, tensorboard, serve's starlette, uvicorn, httpx2, playwright, and ray,
    ray.data), imported; when it cannot be imported, whatever the failure, the calling test is
    skipped (called at module level: the whole module). A broken install fails at import with other
    errors than ImportError (a torchvision built for another torch raises RuntimeError, a wheel for
    another CPU OSError), which ``pytest.importorskip`` lets through as a failure. The skip reason
    names the module, the exception and the fix.
    """
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure to import means: not available here
        pytest.skip(f"{name} cannot be imported ({type(exc).__name__}: {exc}); {_INSTALL.get(name, 'install it')}",
                    allow_module_level=True)


def write_tiny_checkpoint(path: Path, heatmap_bias: float = 0.3, **codec: object) -> Path:
    """A tiny random bottom-up model saved as our checkpoint, its part maps lifted by ``heatmap_bias``
    (the last stage's output bias) so that its noise has peaks above the threshold: the outputs then
    hold people, and every written field is exercised. ``codec``: CodecConfig fields beyond the defaults."""
    torch.manual_seed(0)
    model = build_vgg19_paf(num_stages=2, stage_channels=16, width_mult=0.125)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.stages[-1].heatmaps[-1].bias.add_(heatmap_bias)
    cfg = Config(model=ModelConfig(settings=PafSettings(num_stages=2, stage_channels=16, width_mult=0.125)),
                 codec=CodecConfig(**{"input_size": 128, "peak_threshold": 0.35, **codec}))
    save_checkpoint(path, model_state=model.state_dict(), config=config_to_dict(cfg))
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """:func:`write_tiny_checkpoint`'s model, shared by the command-line tests."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def hrnet_checkpoint(tmp_path_factory) -> Path:
    """A tiny random HRNet saved as our checkpoint; its config keeps the default flip test on."""
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(arch="hrnet", settings=HRNetSettings(width=8, blocks=1)),
                 topdown=TopDownConfig(input_hw=(64, 64), heatmap_hw=(16, 16), sigma_px=4.0, blur_kernel=3))
    assert cfg.topdown.flip_test
    path = tmp_path_factory.mktemp("hrnet") / "hrnet.pt"
    save_checkpoint(path, model_state=build_hrnet(width=8, num_blocks=1).state_dict(), config=config_to_dict(cfg))
    return path


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Three generated 96x128 scenes (``images/`` and ``annotations.json``)."""
    out = tmp_path_factory.mktemp("scenes")
    write_dataset(out, 3, seed=1, cfg=SceneConfig(image_hw=(96, 128)))
    return out


def read_video_frames(path: Path) -> list[np.ndarray]:
    """Every frame OpenCV reads back from a video file, in order (BGR uint8)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def write_video(path: Path, frames: int = 3, hw: tuple[int, int] = (64, 96)) -> Path:
    """A short MJPG video of noise frames (the codec every OpenCV build, headless included, writes and reads)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (hw[1], hw[0]))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, size=hw + (3,), dtype=np.uint8))
    writer.release()
    assert len(read_video_frames(path)) == frames  # the test relies on OpenCV reading it back
    return path


def scenes_and_walk(root: Path, scenes: int, seed: int) -> tuple[Path, Path]:
    """(a folder of ``scenes`` generated 96x128 scenes of people at known places, a generated 6-frame
    video of 2 walkers): the inputs of the runs layer's tests, local and on Ray."""
    from openpose_lite.data.synthetic_video import VideoConfig
    from openpose_lite.data.synthetic_video import write_video as write_walk

    images = write_dataset(root / "scenes", scenes, seed=seed, cfg=SceneConfig(image_hw=(96, 128))).parent / "images"
    video, _ = write_walk(root / "walk", VideoConfig(image_hw=(96, 128), num_frames=6, num_people=2, fps=10.0, seed=1))
    return images, video


def mixed_folder(folder: Path, dataset: Path, frames: int = 3) -> Path:
    """A folder of inputs for infer: the generated scenes' images, a file that is no image, and a short video."""
    folder.mkdir()
    for image in sorted((dataset / "images").glob("*.jpg")):
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    write_video(folder / "clip.avi", frames=frames)
    return folder
