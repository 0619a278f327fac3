"""``infer --ray``: a run spread over Ray Data actors writes what one local ``infer`` writes on the same
40 generated images and generated video; a worker killed mid-run (``ray.kill``) loses nothing and
doubles nothing; a rerun with ``--append`` skips what is done; without Ray, ``--ray`` is refused in
one line naming the extra. One local Ray of 2 CPUs serves the module."""

from __future__ import annotations

import builtins
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import import_optional, scenes_and_walk

from openpose_lite.cli import main
from openpose_lite.run_lock import LOCK_NAME
from openpose_lite.runs import Job, PredictorRecipe, RayOptions, RunOptions, Sources, run, run_on_ray
from openpose_lite.runs.job import open_run
from openpose_lite.runs.sources import sequence_units


@pytest.fixture(scope="module")
def ray():
    """A local Ray with 2 CPUs for the module's runs (its start is the slow part; runs join it)."""
    ray = import_optional("ray")
    import_optional("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(a folder of 40 generated scenes of people at known places, a generated 6-frame video of 2 walkers)."""
    return scenes_and_walk(tmp_path_factory.mktemp("ray_inputs"), 40, seed=3)


@pytest.fixture(scope="module")
def local_run(inputs, checkpoint, tmp_path_factory) -> Path:
    """The folder one local ``infer`` of the inputs writes (one network thread, as each worker has)."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["infer", *map(str, inputs), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress",
                 "--threads", "1"]) == 0
    return out


def _run_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)


def _assert_same_outputs(got: Path, expected: Path) -> None:
    """The same files; each keypoint file the same people, keypoints equal to float tolerance; the same images.json."""
    assert _run_files(got) == _run_files(expected)
    assert json.loads((got / "images.json").read_text()) == json.loads((expected / "images.json").read_text())
    for name in _run_files(expected):
        if not name.endswith("_keypoints.json"):
            continue
        ours, theirs = (json.loads((folder / name).read_text())["people"] for folder in (got, expected))
        assert len(ours) == len(theirs), name
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a["pose_keypoints_2d"], b["pose_keypoints_2d"], atol=1e-3, err_msg=name)
    results = [json.loads((folder / "results_coco.json").read_text()) for folder in (got, expected)]
    assert [r["image_id"] for r in results[0]] == [r["image_id"] for r in results[1]]
    np.testing.assert_allclose([r["keypoints"] for r in results[0]], [r["keypoints"] for r in results[1]], atol=1e-3)


def test_every_input_is_in_exactly_one_unit_and_sequences_stay_whole(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(4):
        (frames / f"f{n}.jpg").write_bytes(b"")
    for name in ("a.mp4", "b.mp4", "lone.jpg"):
        (tmp_path / name).write_bytes(b"")
    inputs = Sources.of([frames, tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "lone.jpg"]).inputs
    # Tracking follows people through a folder's frames, so one worker takes the folder whole; otherwise
    # each frame is a unit of its own. A video is always one unit, read in frame order.
    assert sequence_units(inputs, track=False) == [[0], [1], [2], [3], [4], [5], [6]]
    assert sequence_units(inputs, track=True) == [[0, 1, 2, 3], [4], [5], [6]]


def test_without_ray_the_option_is_refused_in_one_line_naming_the_extra(checkpoint, inputs, tmp_path, monkeypatch,
                                                                         capsys):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["infer", str(inputs[1]), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out"), "--ray"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pip install 'openpose-lite[ray]'" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_a_rerun_with_append_leaves_out_the_inputs_the_folder_already_indexes(checkpoint, inputs, tmp_path):
    images = sorted(inputs[0].glob("*.jpg"))[:5]
    out = tmp_path / "out"
    from openpose_lite.inference import BottomUpPredictor

    run(BottomUpPredictor.from_weights(checkpoint), images[:3], RunOptions(output=out, weights=checkpoint))
    job = Job(images, RunOptions(output=out, weights=checkpoint, append=True))
    with open_run(job, BottomUpPredictor.from_weights(checkpoint).skeleton) as (pending, left):
        assert [i.path for i in left] == images[3:]
        assert pending.names == [p.stem for p in images[3:]]  # named as a first run names them


def test_two_workers_write_what_one_local_infer_writes(ray, inputs, checkpoint, local_run, tmp_path, capsys):
    out = tmp_path / "ray"
    code = main(["infer", *map(str, inputs), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress",
                 "--ray", "--ray-workers", "2"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.startswith("46 images, ") and ", 0 failures" in printed.out
    _assert_same_outputs(out, local_run)


def test_a_worker_killed_mid_run_leaves_every_image_written_exactly_once(ray, inputs, checkpoint, local_run, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    @dataclass(frozen=True)
    class KilledOnce(PredictorRecipe):
        """The first worker to reach its third batch is removed for good by ``ray.kill`` in the middle of
        it: Ray Data's run of the dataset then fails, and the driver runs what is left on a new pool. (A
        worker whose process dies is restarted by Ray, which runs its task again: Ray Data's own retry.)"""

        marks: str = ""

        def build(self):
            import os
            import time

            import ray as worker_ray

            predictor, marks, seen = super().build(), Path(self.marks), [0]

            class Dying:
                def forward(self, prepared):
                    seen[0] += 1
                    if seen[0] == 3:
                        try:
                            os.close(os.open(marks / "killed", os.O_CREAT | os.O_EXCL))
                        except FileExistsError:
                            return predictor.forward(prepared)
                        worker_ray.kill(worker_ray.get_runtime_context().current_actor)
                        time.sleep(60)
                        (marks / "survived").touch()  # never reached: the kill ends the process
                    return predictor.forward(prepared)

                def __getattr__(self, name):
                    return getattr(predictor, name)

            return Dying()

    out = tmp_path / "ray"
    reports = []
    summary = run_on_ray(KilledOnce(checkpoint, marks=str(marks)), list(inputs),
                         RunOptions(output=out, weights=checkpoint), RayOptions(workers=2, units_per_task=2),
                         progress=reports.append)
    assert (marks / "killed").exists() and not (marks / "survived").exists()
    assert summary.images == 46 and not summary.failures
    _assert_same_outputs(out, local_run)  # every image's file once, none missing, no temporary file left
    assert [r.done for r in reports if r.failure is None] == list(range(47))

    # A rerun with --append finds every input done: nothing runs, nothing is rewritten.
    before = {name: (out / name).stat().st_mtime_ns for name in _run_files(out) if name.endswith("_keypoints.json")}
    again = run_on_ray(PredictorRecipe(checkpoint), list(inputs),
                       RunOptions(output=out, weights=checkpoint, append=True), RayOptions(workers=2))
    assert again.images == 0
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    _assert_same_outputs(out, local_run)
