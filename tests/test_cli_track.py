"""``infer --track``: people keep their ids across the frames of a video or a folder of frames,
in the OpenPose JSON (``person_id``), in results_coco.json (``track_id``) and in the drawings;
and ``synth --video`` writes the videos these runs are tried on.

The network is replaced by a stand-in that returns the generated video's people (with a
detector's noise, in a shuffled order, without ids) frame after frame, so the ids the command
writes can be held against the true identities and against the tracker run directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import import_optional, read_video_frames

from openpose_lite.cli import infer as infer_cli
from openpose_lite.cli import main
from openpose_lite.data.synthetic_video import (
    VideoConfig,
    generate_video,
    ground_truth_poses,
    simulate_detections,
)
from openpose_lite.mot_metrics import evaluate_tracking
from openpose_lite.skeleton import OPENPOSE_18
from openpose_lite.structures import Poses
from openpose_lite.tracking import Tracker, TrackerParams
from openpose_lite.viz import draw_poses, track_colour

VIDEO = VideoConfig(num_frames=40, num_people=6, seed=6, fps=10.0)


class VideoPeople:
    """Stands in for a predictor: the next frames' detections, in stream order, whatever the pixels."""

    def __init__(self, detections: list[Poses]) -> None:
        self.detections = list(detections)
        self.skeleton = self.detections[0].skeleton
        self.next = 0

    def input_problem(self, image_hw):
        return None

    def prepare(self, images, image_ids=None):
        out = self.detections[self.next : self.next + len(images)]
        self.next += len(images)
        return out

    def forward(self, prepared):
        return prepared

    def finish(self, prepared, outputs):
        return outputs

    def predict_batch(self, images, image_ids=None):
        return self.finish(*(lambda p: (p, self.forward(p)))(self.prepare(images, image_ids)))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """(video file, folder of its frames as PNG, the true people per frame, the detections per frame)."""
    out = tmp_path_factory.mktemp("walk")
    assert main(["synth", str(out), "--video", "--frames", str(VIDEO.num_frames), "--people", str(VIDEO.num_people),
                 "--seed", str(VIDEO.seed), "--fps", str(VIDEO.fps)]) == 0
    frames_dir = out / "frames"
    frames_dir.mkdir()
    images = read_video_frames(out / "video.mp4")
    for n, image in enumerate(images):
        cv2.imwrite(str(frames_dir / f"frame_{n:04d}.png"), image)
    assert len(images) == VIDEO.num_frames
    truth = ground_truth_poses(generate_video(VIDEO))
    return out / "video.mp4", frames_dir, truth, simulate_detections(truth, seed=1)


def _written_people(out: Path, names: list[str]) -> list[Poses]:
    """Per frame, the people of the written OpenPose JSON files, with their person_id as track id."""
    frames = []
    for name in names:
        people = json.loads((out / name).read_text())["people"]
        kps = np.array([p["pose_keypoints_2d"] for p in people], np.float32).reshape(-1, 18, 3)
        ids = np.array([p["person_id"][0] for p in people], np.int64)
        frames.append(Poses(kps, np.ones(len(kps), np.float32), OPENPOSE_18, ids))
    return frames


@pytest.mark.parametrize("source", ["video", "folder of frames"])
@pytest.mark.parametrize("pipeline", [[], ["--no-pipeline"]])
def test_track_writes_the_ids_of_the_tracker_and_they_follow_the_true_people(source, pipeline, video, checkpoint,
                                                                            tmp_path, monkeypatch):
    import_optional("motmetrics")
    path, frames_dir, truth, detections = video
    monkeypatch.setattr(infer_cli, "build_predictor", lambda args: VideoPeople(detections))
    out = tmp_path / "out"
    target = path if source == "video" else frames_dir
    assert main(["infer", str(target), "--checkpoint", str(checkpoint), "-o", str(out), "--track", "--batch-size", "3",
                 "--no-progress", *pipeline]) == 0

    if source == "video":
        names = [f"video_{i:012d}_keypoints.json" for i in range(VIDEO.num_frames)]
    else:
        names = [f"frame_{i:04d}_keypoints.json" for i in range(VIDEO.num_frames)]
    written = _written_people(out, names)
    # The ids are exactly those of the tracker fed the same frames in order (a video's own frame rate).
    tracker = Tracker(TrackerParams(fps=10.0 if source == "video" else 30.0))
    for got, frame in zip(written, detections):
        assert got.track_ids.tolist() == tracker.update(frame).track_ids.tolist()
    # ... and they follow the true people: every walker keeps one id through the crossings (the
    # misses are the frames before an id is confirmed and the people the detector drops).
    metrics = evaluate_tracking(written, truth)
    assert metrics["id_switches"] == 0 and metrics["idf1"] > 0.85, metrics

    # results_coco.json carries the same ids as track_id, frame by frame.
    images = json.loads((out / "images.json").read_text())
    by_json = {entry["json"]: int(image_id) for image_id, entry in images.items()}
    results = json.loads((out / "results_coco.json").read_text())
    for name, got in zip(names, written):
        ids = [r["track_id"] for r in results if r["image_id"] == by_json[name]]
        assert ids == got.track_ids.tolist()


def test_without_track_every_person_id_is_minus_one(video, checkpoint, tmp_path, monkeypatch):
    path, _, _, detections = video
    monkeypatch.setattr(infer_cli, "build_predictor", lambda args: VideoPeople(detections))
    out = tmp_path / "out"
    assert main(["infer", str(path), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]) == 0
    written = _written_people(out, [f"video_{i:012d}_keypoints.json" for i in range(VIDEO.num_frames)])
    assert sum(len(p) for p in written) > 0
    assert all((p.track_ids == -1).all() for p in written)
    assert all("track_id" not in r for r in json.loads((out / "results_coco.json").read_text()))


def test_track_min_score_reaches_the_tracker(video, checkpoint, tmp_path, monkeypatch):
    path, _, _, detections = video
    scored = [Poses(p.keypoints, np.linspace(0.2, 0.9, len(p)).astype(np.float32), p.skeleton) for p in detections]
    monkeypatch.setattr(infer_cli, "build_predictor", lambda args: VideoPeople(scored))
    out = tmp_path / "out"
    assert main(["infer", str(path), "--checkpoint", str(checkpoint), "-o", str(out), "--track", "--no-progress",
                 "--track-min-score", "0.5"]) == 0
    written = _written_people(out, [f"video_{i:012d}_keypoints.json" for i in range(VIDEO.num_frames)])
    tracker = Tracker(TrackerParams(fps=10.0, min_score=0.5))
    low = 0
    for got, frame in zip(written, scored):
        assert got.track_ids.tolist() == tracker.update(frame).track_ids.tolist()
        assert (got.track_ids[frame.scores < 0.5] == -1).all()
        low += int((frame.scores < 0.5).sum())
    assert low > 0 and any((p.track_ids >= 0).any() for p in written)


def test_smooth_moves_keypoints_but_keeps_the_ids(video, checkpoint, tmp_path, monkeypatch):
    path, _, _, detections = video
    runs = {}
    for flags in ([], ["--smooth"]):
        monkeypatch.setattr(infer_cli, "build_predictor", lambda args: VideoPeople(detections))
        out = tmp_path / ("smooth" if flags else "plain")
        assert main(["infer", str(path), "--checkpoint", str(checkpoint), "-o", str(out), "--track", "--no-progress",
                     *flags]) == 0
        runs[bool(flags)] = _written_people(out, [f"video_{i:012d}_keypoints.json" for i in range(VIDEO.num_frames)])
    assert [p.track_ids.tolist() for p in runs[False]] == [p.track_ids.tolist() for p in runs[True]]
    moved = max(float(np.abs(a.keypoints - b.keypoints).max()) for a, b in zip(runs[False], runs[True]) if len(a))
    assert moved > 0.5  # the One Euro filter took the detector's noise out of the tracked people


@pytest.mark.parametrize(("argv", "message"), [
    (["--track"], "--track follows people from frame to frame: give a video or a folder of frames, not the single image"),
    (["--smooth"], "--smooth smooths tracked people over time; add --track"),
    (["--track-min-score", "0.5"], "--track-min-score sets which people the tracker follows; add --track"),
    (["--track", "--track-min-score", "nan"], "--track-min-score nan: TrackerParams.min_score must be finite"),
])
def test_track_options_that_cannot_work_are_refused_before_the_model_loads(argv, message, dataset, checkpoint,
                                                                          tmp_path, capsys):
    image = dataset / "images" / "000001.jpg"
    assert main(["infer", str(image), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_rendered_people_take_the_colour_of_their_id_in_every_frame():
    image = np.zeros((120, 200, 3), np.uint8)
    kps = np.zeros((2, 18, 3), np.float32)
    kps[:, 1] = [[50, 30, 1], [150, 30, 1]]  # necks
    kps[:, 8] = [[50, 90, 1], [150, 90, 1]]  # right hips: the neck-hip limb is a long vertical line
    drawn = draw_poses(image, Poses(kps, np.ones(2, np.float32), OPENPOSE_18, np.array([7, 3])), thickness=3)
    assert tuple(int(c) for c in drawn[60, 50]) == track_colour(7)
    assert tuple(int(c) for c in drawn[60, 150]) == track_colour(3)
    assert track_colour(7) != track_colour(3)
    swapped = draw_poses(image, Poses(kps[::-1].copy(), np.ones(2, np.float32), OPENPOSE_18, np.array([3, 7])),
                         thickness=3)
    assert np.array_equal(swapped, drawn)  # the colour goes with the id, not with the order of the people
    untracked = draw_poses(image, Poses(kps, np.ones(2, np.float32), OPENPOSE_18, np.array([-1, 3])), thickness=3)
    assert tuple(int(c) for c in untracked[60, 50]) == (160, 160, 160)  # no id yet: grey


def test_synth_video_writes_frames_and_track_ids(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["synth", str(out), "--video", "--frames", "6", "--size", "72", "128", "--people", "2",
                 "--fps", "12"]) == 0
    assert "wrote" in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out / "video.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    capture.release()
    frames = read_video_frames(out / "video.mp4")
    assert [image.shape for image in frames] == [(72, 128, 3)] * 6
    ann = json.loads((out / "annotations.json").read_text())
    assert [im["frame_index"] for im in ann["images"]] == list(range(6))
    assert {a["track_id"] for a in ann["annotations"]} == {0, 1}
    assert main(["synth", str(tmp_path / "w"), "--video", "--frames", "0"]) == 2
    assert "--video: " in capsys.readouterr().err
