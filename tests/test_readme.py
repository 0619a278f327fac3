"""The README's Python example runs as written, after the quickstart's commands have made what it reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import write_tiny_checkpoint

from openpose_lite.cli import main as cli_main

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    """The first ```python block of the README after the line that starts with ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    match = re.search(r"```python\n(.*?)```", text[start:], flags=re.S)
    assert match, f"no python block after {heading!r} in README.md"
    return match.group(1)


def test_the_readme_python_example_runs_as_written_on_the_quickstarts_files(tmp_path, monkeypatch):
    code = _python_block_after("From Python, after the quickstart")
    # What the quickstart leaves: its checkpoint (a tiny one of the same kind here, trained for
    # minutes there) and the new scene of the README's own `synth` command, run as written.
    write_tiny_checkpoint(tmp_path / "runs" / "vgg19_synthetic_cpu" / "best.pt")
    synth = re.search(r"^openpose-lite (synth new_scene .*)$", README.read_text(encoding="utf-8"), flags=re.M)
    assert synth, "the quickstart's synth command is not in README.md"
    monkeypatch.chdir(tmp_path)
    assert cli_main(synth.group(1).split()) == 0
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # The example prints the count, then the text of an OpenPose JSON file (json.loads reads it back).
    lines = done.stdout.splitlines()
    assert re.match(r"^\d+ people; scores", lines[0])
    document = json.loads(lines[-1])  # one line: no indent
    assert document["version"] == 1.3
    assert len(document["people"]) == int(lines[0].split()[0])
    assert all(len(p["pose_keypoints_2d"]) == 18 * 3 for p in document["people"])


def test_the_readme_folder_run_from_python_writes_what_its_infer_command_writes(tmp_path, monkeypatch):
    code = _python_block_after("A folder (or videos, a camera, a stream URL) into an output folder, from Python")
    command = re.search(r"`openpose-lite (infer new_scene/images [^`]*)`", README.read_text(encoding="utf-8"))
    assert command, "the README names no infer command the Python example stands for"
    write_tiny_checkpoint(tmp_path / "runs" / "vgg19_synthetic_cpu" / "best.pt")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["synth", "new_scene", "--num-images", "2", "--seed", "2024"]) == 0
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.match(r"^2 images, \d+ (person|people), 0 failures; outputs in new_scene/poses$", done.stdout.strip())
    argv = command.group(1).replace("new_scene/poses", "by_the_cli").split()
    assert cli_main([*argv, "--no-progress"]) == 0
    ours, theirs = (sorted((p.name, p.read_bytes()) for p in folder.iterdir() if not p.name.startswith("."))
                    for folder in (tmp_path / "new_scene" / "poses", tmp_path / "by_the_cli"))
    assert ours == theirs and len(ours) == 2 * 2 + 3  # keypoints and drawing per image, the index, the model record
