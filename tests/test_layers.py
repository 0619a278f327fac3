"""The import layers of docs/architecture.md hold, every one of them.

Statically: every import of every module (at the top or inside a function) reaches only its own
layer or the layers above it, in the table below, which is the docs' table. At run time: inference
imports nothing of training (nor the evaluation stack), and the foundations, the codecs and the
settings import no torch; each runs in a fresh interpreter whose import system refuses the
forbidden modules, then does real work through the allowed ones, so a lazy import deep in a call
path is caught too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "openpose_lite"
DOCS = ROOT / "docs" / "architecture.md"

# docs/architecture.md, "Layers": each layer imports only from the layers above it. Module names
# are relative to openpose_lite; a package name covers its modules unless a module is listed.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("params", "skeleton", "cmu_skeletons", "limbs", "geometry", "structures", "io", "bounded_yaml", "images",
                     "image_headers", "run_lock", "output_folder", "devices", "oks", "one_euro", "plots")),
    ("targets, inputs and the COCO format", ("codecs", "preprocess", "transforms", "coco")),
    ("settings", ("config", "train_config", "branches", "architectures", "factory", "network_settings")),
    ("networks", ("models",)),
    ("inference", ("inference", "live")),
    ("data", ("data",)),
    ("scoring, tracking, drawing", ("evaluation", "oracle", "tracking", "mot_metrics", "viz")),
    ("runs", ("runs",)),
    ("training", ("losses", "training")),
    ("serving", ("serve",)),
    ("interfaces", ("bench", "cli", "__main__")),
]


def layer_of(module: str) -> int:
    """The layer index of ``module`` (relative name; the package itself is a foundation)."""
    if module in ("", "openpose_lite"):
        return 0
    best = None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    if best is None:
        raise AssertionError(f"openpose_lite.{module} is in no layer of docs/architecture.md")
    return best[0]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every openpose_lite module ``module`` imports, top-level or lazily (relative names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative imports hide their layer; write openpose_lite.<module>"
            if node.module and node.module.split(".")[0] == "openpose_lite":
                target = node.module.removeprefix("openpose_lite").lstrip(".")
            else:
                continue
            found.add(target)
            # ``from openpose_lite.models import weights``: the submodule is imported too.
            found.update(f"{target}.{a.name}".strip(".") for a in node.names if f"{target}.{a.name}".strip(".") in _MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("openpose_lite").lstrip(".") for a in node.names
                         if a.name.split(".")[0] == "openpose_lite")
    return found


_MODULES = _modules()


def test_every_module_imports_only_its_own_layer_and_those_above():
    wrong = []
    for module, path in _MODULES.items():
        own = layer_of(module)
        for target in _imports(module, path):
            if layer_of(target) > own:
                wrong.append(f"openpose_lite.{module} ({LAYERS[own][0]}) imports openpose_lite.{target} "
                             f"({LAYERS[layer_of(target)][0]})")
    assert not wrong, wrong


def test_the_layers_here_are_the_docs_layers():
    # The docs' code block lists each layer's modules on one line, in this order.
    block = DOCS.read_text(encoding="utf-8").split("## Layers", 1)[1].split("```")[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == len(LAYERS), lines
    for line, (name, modules) in zip(lines, LAYERS):
        listed = {m.strip().rstrip("/").replace("/", ".") for m in re.split(r",\s*", line.split("  ")[0].strip())}
        assert listed == set(modules), (name, listed)


def test_the_static_check_catches_an_import_from_a_lower_layer(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def late():\n    from openpose_lite.training import trainer\n")
    assert "training.trainer" in _imports("codecs.bad", bad)
    assert layer_of("training.trainer") > layer_of("codecs.bad")


# ---------------------------------------------------------------------------------- at run time
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


# Training, its data and the evaluation stack.
TRAINING = ["openpose_lite.training", "openpose_lite.losses", "openpose_lite.evaluation", "openpose_lite.oracle",
            "pycocotools", *(f"openpose_lite.data.{m}" for m in ("coco", "samples", "people", "synthetic",
                                                                  "synthetic_video", "figures", "skeleton_figures"))]


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
                                    "openpose_lite.coco.skeleton", "openpose_lite.config", "openpose_lite.branches",
                                    "openpose_lite.architectures", "openpose_lite.network_settings",
                                    "openpose_lite.codecs.bottomup",
                                    "openpose_lite.codecs.topdown", "openpose_lite.tracking"])
def test_foundations_codecs_and_settings_import_no_torch(module, tmp_path):
    run = _run(["torch"], f"import {module}\nprint('ok')\n", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
