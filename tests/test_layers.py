"""The import layers of docs/architecture.md hold: inference imports nothing of training (nor the
evaluation stack), and the foundations import no torch.

Each check runs in a fresh interpreter whose import system refuses the forbidden modules, then
does real work through the allowed ones, so a lazy import deep in a call path is caught too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKER = '''
import importlib.abc, sys
FORBIDDEN = {forbidden!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            raise ImportError(f"layer violation: {{name}} imported")
        return None

sys.meta_path.insert(0, Block())
'''


def _run(forbidden: list[str], body: str, tmp_path) -> subprocess.CompletedProcess:
    script = BLOCKER.format(forbidden=forbidden) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=240)


# Training, its data and the evaluation stack. ``openpose_lite.data.transforms`` is not among them:
# it declares the ``data`` section's settings (AugmentParams), which reading any config needs.
TRAINING = ["openpose_lite.training", "openpose_lite.losses", "openpose_lite.evaluation", "openpose_lite.oracle",
            "pycocotools", *(f"openpose_lite.data.{m}" for m in ("coco", "coco_validation", "samples", "people",
                                                                  "synthetic", "synthetic_video", "figures"))]


def test_predicting_from_a_checkpoint_and_infer_import_nothing_of_training(checkpoint, tmp_path):
    run = _run(TRAINING, f'''
        import numpy as np, cv2
        from openpose_lite.inference import BottomUpPredictor
        predictor = BottomUpPredictor.from_checkpoint({str(checkpoint)!r}, device="cpu")
        poses = predictor(np.full((96, 128, 3), 100, np.uint8))
        assert poses.keypoints.shape[1:] == (18, 3)
        cv2.imwrite("frame.png", np.full((96, 128, 3), 100, np.uint8))
        from openpose_lite.cli import main
        code = main(["infer", "frame.png", "--checkpoint", {str(checkpoint)!r}, "-o", "out", "--no-progress"])
        assert code == 0, code
        print("ok")
    ''', tmp_path)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_the_forbidden_import_is_caught(tmp_path):
    run = _run(["openpose_lite.training"], "import openpose_lite.training\n", tmp_path)
    assert run.returncode != 0 and "layer violation: openpose_lite.training imported" in run.stderr


@pytest.mark.parametrize("module", ["openpose_lite.skeleton", "openpose_lite.geometry", "openpose_lite.structures",
                                    "openpose_lite.config", "openpose_lite.codecs.bottomup",
                                    "openpose_lite.codecs.topdown", "openpose_lite.tracking"])
def test_foundations_codecs_and_config_import_no_torch(module, tmp_path):
    run = _run(["torch"], f"import {module}\nprint('ok')\n", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
