"""The runs layer from Python, without argparse: a folder of generated scenes and a generated video
run through :func:`openpose_lite.runs.run` write, byte for byte, the files ``openpose-lite infer``
writes on the same inputs; a stop while the last image is being written leaves an index of every
file on disk."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import scenes_and_walk

from openpose_lite.cli import main
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.run_lock import LOCK_NAME
from openpose_lite.runs import Progress, RunOptions, RunStopped, run
from openpose_lite.tracking import TrackerParams


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(a folder of 3 generated scenes of people at known places, a generated 6-frame video of walkers)."""
    return scenes_and_walk(tmp_path_factory.mktemp("inputs"), 3, seed=2)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file a run left in ``folder`` (the folder's lock file is the lock's, not the run's)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != LOCK_NAME}


@pytest.mark.parametrize("flags, options", [
    (["--render"], {"writers": {"keypoints", "rendered_image", "rendered_video"}}),
    (["--track", "--smooth", "--batch-size", "2"], {"tracking": TrackerParams(smooth=True), "batch_size": 2}),
], ids=["render", "track"])
def test_a_folder_and_a_video_run_from_python_write_what_infer_writes_byte_for_byte(flags, options, inputs, checkpoint,
                                                                                   tmp_path):
    images, video = inputs
    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    assert main(["infer", str(images), str(video), "--checkpoint", str(checkpoint), "-o", str(cli_out),
                 "--no-progress", *flags]) == 0

    reports: list[Progress] = []
    predictor = BottomUpPredictor.from_weights(checkpoint)
    summary = run(predictor, [images, video], RunOptions(output=lib_out, weights=checkpoint, **options),
                  progress=reports.append)

    expected = _files(cli_out)
    assert _files(lib_out) == expected
    keypoint_files = [n for n in expected if n.endswith("_keypoints.json")]
    assert len(keypoint_files) == 3 + 6 and (summary.images, summary.failures) == (9, ())
    assert summary.people == len(json.loads(expected["results_coco.json"]))
    # One report before the first item, then one per image and frame, counting up to the total.
    assert [(p.done, p.total) for p in reports] == [(n, 9) for n in range(10)]


class _StoppedWhileWritingTheLast:
    """A predictor whose last image is decoded slowly, and the run stopped (a KeyboardInterrupt in the
    calling thread, as Ctrl-C or SIGTERM raise it) while it is: the calling thread is then waiting
    for the writing thread, which goes on with that image after the run has stopped."""

    def __init__(self, predictor, images: int) -> None:
        self.predictor, self.left = predictor, images

    def finish(self, prepared, outputs):
        self.left -= 1
        if self.left == 0:
            time.sleep(0.3)  # the calling thread is waiting for this thread to end
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            time.sleep(0.3)  # ... and the run stops meanwhile
        return self.predictor.finish(prepared, outputs)

    def __getattr__(self, name):
        return getattr(self.predictor, name)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def test_a_stop_while_the_last_image_is_written_leaves_an_index_of_every_file_on_disk(inputs, checkpoint, tmp_path,
                                                                                       monkeypatch):
    images, _ = inputs
    predictor = _StoppedWhileWritingTheLast(BottomUpPredictor.from_weights(checkpoint), 3)
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    try:
        with pytest.raises(RunStopped) as stopped:
            run(predictor, [images], RunOptions(output=tmp_path / "out"))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert isinstance(stopped.value.cause, KeyboardInterrupt)
    # The run waits for the writing thread to end (inference/pipeline.py), so the image it was on is
    # written, then indexed: the index names every file on disk.
    assert stopped.value.message("interrupted").startswith("interrupted after 3 images; wrote 3 keypoint files")
    deadline = time.monotonic() + 10  # the writing thread has ended (and written what it was let to)
    while any(t.name == "openpose-lite-finisher" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    indexed = {e["json"] for e in json.loads((tmp_path / "out" / "images.json").read_text()).values()}
    assert {p.name for p in (tmp_path / "out").glob("*_keypoints.json")} == indexed
    assert len(indexed) == 3


@pytest.mark.parametrize("options, field", [
    ({"writers": {"rendered_image"}}, "RunOptions.writers"),  # the keypoint files are what images.json indexes
    ({"writers": {"keypoints", "thumbnail"}}, "RunOptions.writers"),
    ({"append": True}, "RunOptions.weights"),  # appending checks the folder's model against this one
    ({"append": True, "overwrite": True, "weights": "w.pt"}, "RunOptions.append"),
    ({"batch_size": 0}, "RunOptions.batch_size"),
    ({"duration": float("nan")}, "RunOptions.duration"),
])
def test_options_that_cannot_work_are_refused_naming_the_field(options, field):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        RunOptions(**options)
