"""Tracking across video frames: ids through crossings and occlusions, birth and death rules,
One Euro smoothing, both skeletons, the track id fields of Poses, and the generated videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import import_optional, read_video_frames

from openpose_lite.data.synthetic_video import (
    VideoConfig,
    generate_video,
    ground_truth_poses,
    simulate_detections,
    write_video,
)
from openpose_lite.evaluation import load_coco
from openpose_lite.mot_metrics import evaluate_tracking
from openpose_lite.oks import keypoint_similarity
from openpose_lite.one_euro import OneEuroFilter
from openpose_lite.skeleton import COCO_17, OPENPOSE_18
from openpose_lite.structures import Poses
from openpose_lite.tracking import Tracker, TrackerParams, greedy_nearest_neighbour

# A standing COCO-17 person about 150 px tall, pelvis at the origin, y down.
TEMPLATE = np.array(
    [
        [0, -92], [4, -96], [-4, -96], [9, -94], [-9, -94],  # nose, eyes, ears
        [16, -70], [-16, -70], [20, -45], [-20, -45], [22, -22], [-22, -22],  # shoulders, elbows, wrists
        [9, 0], [-9, 0], [11, 28], [-11, 28], [11, 56], [-11, 56],  # hips, knees, ankles
    ],
    dtype=np.float32,
)


def person(x: float, y: float = 200.0) -> np.ndarray:
    """(17, 3) keypoints of the template standing at (x, y), every keypoint labelled."""
    kps = np.ones((17, 3), np.float32)
    kps[:, :2] = TEMPLATE + np.array([x, y], np.float32)
    return kps


def frame(*people: np.ndarray) -> Poses:
    kps = np.stack(people) if people else np.zeros((0, 17, 3), np.float32)
    return Poses(kps, np.ones(len(kps), np.float32), COCO_17)


# ------------------------------------------------------------------------- the video
@pytest.fixture(scope="module")
def video():
    cfg = VideoConfig(image_hw=(360, 640), num_frames=90, num_people=8, seed=0)
    frames = generate_video(cfg)
    truth = ground_truth_poses(frames, min_visible=3)
    detections = simulate_detections(truth, seed=0, keypoint_noise_px=2.0, drop_person_prob=0.03, drop_keypoint_prob=0.1)
    return frames, truth, detections


def _crossings(truth: list[Poses]) -> int:
    """Pairs of people whose left-right order flips between consecutive frames they share."""
    centre = {}
    for f, poses in enumerate(truth):
        for tid, kps in zip(poses.track_ids.tolist(), poses.keypoints):
            centre[f, tid] = kps[kps[:, 2] > 0, 0].mean()
    ids = sorted({tid for _, tid in centre})
    count = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            signs = [np.sign(centre[f, a] - centre[f, b]) for f in range(len(truth)) if (f, a) in centre and (f, b) in centre]
            count += int(np.sum(np.diff(signs) != 0))
    return count


def _occlusions(frames, min_frames: int) -> int:
    """Runs of at least ``min_frames`` frames in which a person is hidden behind others, seen before and after."""
    runs = 0
    for tid in range(8):
        state = []  # per frame: "seen", "hidden" or "absent"
        for fr in frames:
            j = np.nonzero(fr.track_ids == tid)[0]
            state.append("absent" if len(j) == 0 else ("hidden" if fr.hidden[j[0]] else "seen"))
        i = 0
        while i < len(state):
            if state[i] == "hidden":
                k = i
                while k < len(state) and state[k] == "hidden":
                    k += 1
                runs += int(k - i >= min_frames and i > 0 and state[i - 1] == "seen" and k < len(state) and state[k] == "seen")
                i = k
            else:
                i += 1
    return runs


def test_tracker_keeps_ids_through_crossings_and_occlusions_of_noisy_detections(video):
    import_optional("motmetrics")
    frames, truth, detections = video
    assert len({tid for fr in frames for tid in fr.track_ids.tolist()}) >= 8
    assert _crossings(truth) >= 5
    assert _occlusions(frames, min_frames=3) >= 3  # people hidden behind others for 3+ frames, then seen again

    metrics = evaluate_tracking(Tracker().track(detections), truth)
    assert metrics["idf1"] >= 0.95
    assert metrics["id_switches"] <= metrics["person_frames"] / 100


def test_tracker_beats_greedy_nearest_neighbour_on_the_noisy_video(video):
    import_optional("motmetrics")
    _, truth, detections = video
    ours = evaluate_tracking(Tracker().track(detections), truth)
    greedy = evaluate_tracking(greedy_nearest_neighbour(detections), truth)
    assert ours["id_switches"] < greedy["id_switches"]
    assert ours["idf1"] > greedy["idf1"]


@pytest.mark.parametrize("missed_crossing_frame", [False, True])
def test_greedy_swaps_ids_of_two_people_crossing_at_different_speeds_and_tracker_does_not(missed_crossing_frame):
    # A walks right at 12 px/frame, B left at 4 px/frame; they pass each other at frame ~3.75
    frames = []
    for t in range(10):
        a, b = person(100 + 12 * t, 200), person(160 - 4 * t, 206)
        frames.append(frame() if (missed_crossing_frame and t == 4) else frame(a, b))

    def id_of(tracked, t, who):  # who: 0 for A, 1 for B (the detection order)
        return int(tracked[t].track_ids[who])

    greedy = greedy_nearest_neighbour(frames)
    assert id_of(greedy, 2, 0) != id_of(greedy, 9, 0)  # the baseline swaps A and B

    tracked = Tracker().track(frames)  # confirmed at frame 2, before they meet
    shown = [t for t in range(2, 10) if len(tracked[t])]
    assert {id_of(tracked, t, 0) for t in shown} == {0} and {id_of(tracked, t, 1) for t in shown} == {1}


# ------------------------------------------------------------------ birth, death and ids
def test_people_scoring_under_min_score_get_no_id_and_start_no_track():
    tracker = Tracker(TrackerParams(confirm_frames=1, min_score=0.5))
    a, b = person(100), person(400)
    for _ in range(3):  # a fragment scoring 0.2 beside a person scoring 0.9, frame after frame
        out = tracker.update(Poses(np.stack([a, b]), np.array([0.9, 0.2], np.float32), COCO_17))
        assert out.track_ids.tolist() == [0, -1]
        assert tracker.num_tracks == 1
    # the same fragment at a score of 0.5 is followed: min_score is inclusive
    out = tracker.update(Poses(np.stack([a, b]), np.array([0.9, 0.5], np.float32), COCO_17))
    assert out.track_ids.tolist() == [0, 1]
    # a tracked person who drops under min_score is not matched (the track coasts, keeping its id)
    out = tracker.update(Poses(np.stack([a, b]), np.array([0.1, 0.5], np.float32), COCO_17))
    assert out.track_ids.tolist() == [-1, 1] and tracker.num_tracks == 2
    with pytest.raises(ValueError, match="min_score must be finite"):
        TrackerParams(min_score=float("nan"))


def test_ids_are_never_reused_after_a_track_dies():
    tracker = Tracker(TrackerParams(confirm_frames=1, max_age=2))
    assert tracker.update(frame(person(100))).track_ids.tolist() == [0]
    for _ in range(3):  # unmatched for max_age + 1 frames: the track dies
        tracker.update(frame())
    assert tracker.num_tracks == 0
    assert tracker.update(frame(person(100))).track_ids.tolist() == [1]  # same place, new id
    assert tracker.update(frame(person(100), person(400))).track_ids.tolist() == [1, 2]
    tracker.reset()  # a new video starts the ids again
    assert tracker.update(frame(person(400))).track_ids.tolist() == [0]


def test_a_person_is_confirmed_after_confirm_frames_consecutive_matches():
    tracker = Tracker(TrackerParams(confirm_frames=3))
    ids = [tracker.update(frame(person(100 + 3 * t))).track_ids.tolist() for t in range(4)]
    assert ids == [[-1], [-1], [0], [0]]

    # a tentative track that misses a frame is deleted: confirmation starts over
    tracker = Tracker(TrackerParams(confirm_frames=3))
    seen = [True, True, False, True, True, True]
    ids = [tracker.update(frame(person(100)) if s else frame()).track_ids.tolist() for s in seen]
    assert ids == [[-1], [-1], [], [-1], [-1], [0]]


def test_ids_follow_confirmation_order_then_input_order():
    tracker = Tracker(TrackerParams(confirm_frames=2))
    tracker.update(frame(person(400)))
    assert tracker.update(frame(person(100), person(400))).track_ids.tolist() == [-1, 0]  # 400 was seen first
    assert tracker.update(frame(person(100), person(400))).track_ids.tolist() == [1, 0]
    # two people confirmed in the same frame take ids in their order in the input
    tracker = Tracker(TrackerParams(confirm_frames=2))
    tracker.update(frame(person(500), person(100)))
    assert tracker.update(frame(person(100), person(500))).track_ids.tolist() == [0, 1]


@pytest.mark.parametrize("gap, same_id", [(2, True), (3, False)])
def test_a_confirmed_track_survives_max_age_unmatched_frames(gap, same_id):
    tracker = Tracker(TrackerParams(confirm_frames=1, max_age=2))
    for t in range(3):
        first = tracker.update(frame(person(100 + 5 * t))).track_ids[0]
    for _ in range(gap):
        tracker.update(frame())
    # it comes back where constant velocity predicts it: 5 px per frame
    back = tracker.update(frame(person(100 + 5 * (3 + gap)))).track_ids[0]
    assert (back == first) == same_id
    assert back >= 0


@pytest.mark.parametrize("relative_velocity, same_id", [(1.0, True), (0.0, False)])
def test_an_unmatched_track_is_predicted_with_constant_velocity_per_keypoint(relative_velocity, same_id):
    # a standing person lowering both arms, wrists 3 px/frame, unseen for 3 frames: only a
    # per-keypoint model predicts the wrists well enough for a 0.99 OKS gate (a rigid one moves
    # the whole person by the mean velocity, and leaves the wrists ~11 px behind)
    wrists = [COCO_17.index("left_wrist"), COCO_17.index("right_wrist")]
    walk = []
    for t in range(8):
        kps = person(100)
        kps[wrists, 1] += 3 * t
        walk.append(kps)
    params = TrackerParams(confirm_frames=1, max_age=5, min_similarity=0.99, velocity_smoothing=1.0, relative_velocity=relative_velocity)
    tracker = Tracker(params)
    for t in range(8):
        ids = tracker.update(frame(walk[t]) if t < 4 or t == 7 else frame()).track_ids.tolist()
    assert (ids == [0]) == same_id


# ------------------------------------------------------------------------- One Euro
def test_one_euro_filter_smooths_jitter_more_than_it_lags_a_fast_keypoint():
    rng = np.random.default_rng(0)
    n, warm, sigma = 300, 50, 3.0
    still = rng.normal(0.0, sigma, (n, 2))  # a static keypoint with detector noise
    filt = OneEuroFilter()  # the defaults: min_cutoff 1 Hz, beta 0.2, d_cutoff 1 Hz, 30 fps
    out = np.array([filt(x) for x in still])
    raw_jitter = np.sqrt(np.mean(still[warm:] ** 2))
    jitter = np.sqrt(np.mean(out[warm:] ** 2))
    removed = raw_jitter - jitter
    assert jitter < 0.75 * raw_jitter

    truth = np.stack([10.0 * np.arange(n), np.zeros(n)], 1)  # a limb at 10 px/frame (300 px/s)
    filt = OneEuroFilter()
    out = np.array([filt(x) for x in truth + rng.normal(0.0, sigma, (n, 2))])
    lag = np.mean(truth[warm:, 0] - out[warm:, 0])
    assert 0 <= lag < removed


def test_one_euro_filter_restarts_when_a_value_disappears():
    filt = OneEuroFilter()
    for t in range(10):
        filt(np.array([float(t), 50.0]))
    assert filt(np.array([0.0, 0.0]), present=np.array([False, True]))[0] == 0.0  # passed through
    assert filt(np.array([99.0, 50.0]))[0] == 99.0  # restarted: no memory of 0..9
    assert filt(np.array([99.0, 0.0]))[1] != 0.0  # the other value kept its state
    with pytest.raises(ValueError, match="reset"):
        filt(np.zeros(3))


def test_tracker_smoothing_is_off_by_default_and_reduces_jitter_when_on():
    rng = np.random.default_rng(1)
    noisy = [frame(person(200) + np.concatenate([rng.normal(0, 2.0, (17, 2)), np.zeros((17, 1))], 1).astype(np.float32)) for _ in range(60)]
    plain = Tracker().track(noisy)
    assert all(np.array_equal(a.keypoints, b.keypoints) for a, b in zip(plain, noisy))
    smooth = Tracker(TrackerParams(smooth=True)).track(noisy)
    truth = person(200)[:, :2]
    err_raw = np.sqrt(np.mean([np.square(p.keypoints[0, :, :2] - truth).mean() for p in noisy[20:]]))
    err_smooth = np.sqrt(np.mean([np.square(p.keypoints[0, :, :2] - truth).mean() for p in smooth[20:]]))
    assert err_smooth < 0.75 * err_raw
    assert [p.track_ids.tolist() for p in smooth] == [p.track_ids.tolist() for p in plain]  # association uses raw keypoints


# ---------------------------------------------------------------------- both skeletons
def test_tracker_follows_coco17_and_openpose18_people_alike(video):
    import_optional("motmetrics")
    _, truth, detections = video
    for skeleton in (COCO_17, OPENPOSE_18):
        dets = [d.as_skeleton(skeleton) for d in detections[:45]]
        tracked = Tracker().track(dets)
        assert all(p.skeleton == skeleton for p in tracked)
        metrics = evaluate_tracking(tracked, truth[:45])
        assert metrics["idf1"] >= 0.93 and metrics["id_switches"] <= 1, (skeleton.name, metrics)


# ----------------------------------------------------------------------- Poses fields
def test_tracked_poses_write_person_id_and_track_id():
    poses = Poses(np.stack([person(100), person(300)]), np.array([0.9, 0.8]), COCO_17, np.array([3, -1]))
    assert [p["person_id"] for p in poses.to_openpose_dict()["people"]] == [[3], [-1]]
    assert [r["track_id"] for r in poses.to_coco(image_id=7)] == [3, -1]
    untracked = Poses(poses.keypoints, poses.scores, COCO_17)
    assert [p["person_id"] for p in untracked.to_openpose_dict()["people"]] == [[-1], [-1]]
    assert all("track_id" not in r for r in untracked.to_coco(image_id=7))
    # kept by every derived Poses
    assert poses.as_skeleton(OPENPOSE_18).track_ids.tolist() == [3, -1]
    assert poses.as_skeleton(OPENPOSE_18).as_skeleton(COCO_17).track_ids.tolist() == [3, -1]
    assert poses.transform(np.array([[2.0, 0, 0], [0, 2.0, 0]])).track_ids.tolist() == [3, -1]
    assert poses.select(np.array([1])).track_ids.tolist() == [-1]
    assert Poses(poses.keypoints, np.array([0.1, 0.8]), COCO_17, poses.track_ids).sorted().track_ids.tolist() == [-1, 3]
    both = Poses.concatenate([poses, untracked], COCO_17)
    assert both.track_ids.tolist() == [3, -1, -1, -1]
    assert Poses.concatenate([untracked, untracked], COCO_17).track_ids is None


@pytest.mark.parametrize("ids, match", [([1], "track_ids must be"), ([1.5, 2], "integers"), ([0, -2], ">= 0"), ([[0, 1]], "track_ids must be")])
def test_poses_reject_bad_track_ids(ids, match):
    with pytest.raises(ValueError, match=match):
        Poses(np.stack([person(100), person(300)]), np.ones(2), COCO_17, np.array(ids))


def test_tracker_rejects_bad_input_with_clear_errors():
    tracker = Tracker()
    tracker.update(frame(person(100)))
    with pytest.raises(ValueError, match="openpose18 poses but this tracker follows coco17"):
        tracker.update(frame(person(100)).as_skeleton(OPENPOSE_18))
    bad = person(100)
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        tracker.update(frame(bad))
    bad[3, 2] = 0.0  # an unlabelled keypoint may hold anything
    tracker.update(frame(bad))
    with pytest.raises(TypeError, match="expected Poses"):
        tracker.update(person(100))
    with pytest.raises(ValueError, match="confirm_frames"):
        TrackerParams(confirm_frames=0)
    with pytest.raises(ValueError, match="min_similarity"):
        TrackerParams(min_similarity=1.5)
    with pytest.raises(ValueError, match="fps"):
        TrackerParams(fps=0)
    # a tracker built for one skeleton refuses another from the first frame on
    with pytest.raises(ValueError, match="this tracker follows openpose18"):
        Tracker(skeleton=OPENPOSE_18).update(frame(person(100)))


def test_frames_without_people_are_accepted_whatever_their_skeleton():
    tracker = Tracker(TrackerParams(confirm_frames=1))
    assert tracker.update(Poses.empty()).track_ids.tolist() == []  # Poses.empty() is OpenPose-18
    assert tracker.skeleton is None  # not fixed by a frame without people
    assert tracker.update(frame(person(100))).track_ids.tolist() == [0]
    assert tracker.update(Poses.empty()).track_ids.tolist() == []
    assert tracker.update(frame(person(100))).track_ids.tolist() == [0]


# -------------------------------------------------------------------------- metrics
def test_evaluate_tracking_counts_a_swap_and_scores_perfect_tracking_one(video):
    import_optional("motmetrics")
    _, truth, _ = video
    perfect = evaluate_tracking(truth, truth)
    assert perfect["mota"] == 1.0 and perfect["idf1"] == 1.0 and perfect["id_switches"] == 0
    assert perfect["person_frames"] == sum(len(t) for t in truth)

    # two people swap ids halfway through a still clip: two ID switches (one per person)
    clip = [frame(person(100), person(400)) for _ in range(10)]
    truth_ids = [Poses(c.keypoints, c.scores, COCO_17, np.array([0, 1])) for c in clip]
    swapped = [Poses(c.keypoints, c.scores, COCO_17, np.array([0, 1] if t < 5 else [1, 0])) for t, c in enumerate(clip)]
    metrics = evaluate_tracking(swapped, truth_ids)
    assert metrics["id_switches"] == 2 and metrics["mota"] == pytest.approx(0.9)

    with pytest.raises(ValueError, match="no track_ids"):
        evaluate_tracking(clip, truth_ids)
    with pytest.raises(ValueError, match="track id >= 0"):
        evaluate_tracking(truth_ids, clip)
    with pytest.raises(ValueError, match="frames"):
        evaluate_tracking(truth_ids[:3], truth_ids)


def test_keypoint_similarity_is_cocos_oks_over_keypoints_labelled_in_both():
    # The reference: cocodataset/cocoapi, PythonAPI/pycocotools/cocoeval.py, COCOeval.computeOks:
    # sigmas = [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89] / 10,
    # vars = (2 sigmas)^2, e = (dx^2 + dy^2) / vars / (area + eps) / 2 over the labelled keypoints,
    # OKS = sum(exp(-e)) / their count.
    sigmas = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
    variances = (sigmas * 2) ** 2
    np.testing.assert_allclose(COCO_17.sigmas_array, sigmas)
    a = person(100)[None]
    b = person(103)[None]  # 3 px to the right
    area = 5000.0
    e = 9.0 / variances / (area + np.spacing(1)) / 2
    expected = np.sum(np.exp(-e)) / e.shape[0]
    assert keypoint_similarity(a, b, np.array([area]), COCO_17.sigmas_array)[0, 0] == pytest.approx(expected)
    # Our departure (openpose_lite.oks.mutual_oks): a keypoint the candidate lacks does not count,
    # where computeOks counts every keypoint labelled in the ground truth. With the face
    # unlabelled in the candidate, only the 12 body keypoints count.
    b[0, :5, 2] = 0
    expected_body = np.sum(np.exp(-e[5:])) / e[5:].shape[0]
    assert keypoint_similarity(a, b, np.array([area]), COCO_17.sigmas_array)[0, 0] == pytest.approx(expected_body)
    b[0, :, 2] = 0
    assert keypoint_similarity(a, b, np.array([area]), COCO_17.sigmas_array)[0, 0] == 0.0


# ---------------------------------------------------------------------- the videos
def test_generated_video_is_deterministic_and_hidden_people_are_occluded(video):
    frames, truth, _ = video
    again = generate_video(VideoConfig(image_hw=(360, 640), num_frames=90, num_people=8, seed=0))
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints) for a, b in zip(frames, again))
    assert any(fr.hidden.any() for fr in frames)
    for fr in frames:
        assert (fr.keypoints[fr.hidden, :, 2] <= 1).all()  # no visible keypoint on a hidden person
        assert np.array_equal(fr.track_ids, np.sort(fr.track_ids))
    entering = [tid for tid in range(8) if not (frames[0].track_ids == tid).any() and any((fr.track_ids == tid).any() for fr in frames)]
    leaving = [tid for tid in range(8) if (frames[0].track_ids == tid).any() and not (frames[-1].track_ids == tid).any()]
    assert entering and leaving
    assert all(t.skeleton == COCO_17 and (t.keypoints[..., 2] > 0).sum(1).min(initial=3) >= 3 for t in truth)


def test_write_video_writes_an_mp4_and_coco_annotations_with_track_ids(tmp_path):
    cfg = VideoConfig(image_hw=(96, 160), num_frames=12, num_people=3, seed=5)
    video_path, ann_path = write_video(tmp_path / "v", cfg)
    frames = read_video_frames(video_path)
    assert [image.shape for image in frames] == [(96, 160, 3)] * cfg.num_frames

    data = json.loads(ann_path.read_text())
    assert [im["frame_index"] for im in data["images"]] == list(range(12))
    frames = generate_video(cfg)
    assert len(data["annotations"]) == sum(len(fr.track_ids) for fr in frames)
    for ann in data["annotations"]:
        assert {"track_id", "keypoints", "bbox", "area", "num_keypoints"} <= ann.keys()
        assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3])
    assert load_coco(ann_path).getImgIds() == list(range(1, 13))  # pycocotools reads it
    _, ann_again = write_video(tmp_path / "w", cfg)
    assert ann_again.read_bytes() == ann_path.read_bytes()


def test_video_config_is_typed_and_names_a_value_of_the_wrong_type():
    with pytest.raises(ValueError, match=r"VideoConfig\.fps: expected a number, got 'fast'"):
        VideoConfig(fps="fast")
    with pytest.raises(ValueError, match=r"VideoConfig\.num_frames: expected an integer, got 2\.5"):
        VideoConfig(num_frames=2.5)


def test_the_split_modules_names_stay_importable_from_tracking():
    from openpose_lite import mot_metrics, oks, one_euro, tracking

    assert tracking.OneEuroFilter is one_euro.OneEuroFilter
    assert tracking.evaluate_tracking is mot_metrics.evaluate_tracking
    assert tracking.keypoint_similarity is oks.keypoint_similarity



# ------------------------------------------------------------------------- capture times
def _reference_one_euro(samples: list[float], timestamps: list[float], freq: float, mincutoff: float, beta: float,
                        dcutoff: float) -> list[float]:
    """The authors' reference filter on one value, as casiez/OneEuroFilter python/OneEuroFilter.py
    (``OneEuroFilter.__call__``, ``LowPassFilter``) computes it: the frequency becomes
    ``1 / (timestamp - lasttime)`` when the timestamp moved forward; ``dx`` is the change from the
    last filtered value times the frequency (0 at the first sample); each low-pass blends with
    ``alpha = 1 / (1 + tau / te)``, ``tau = 1 / (2 pi cutoff)``, ``te = 1 / freq``, and passes its first value through."""
    def alpha(cutoff: float) -> float:
        return 1.0 / (1.0 + (1.0 / (2 * np.pi * cutoff)) / (1.0 / freq))

    out, last_time, x_s, dx_s = [], None, None, None
    for x, t in zip(samples, timestamps):
        if last_time and t and t > last_time:
            freq = 1.0 / (t - last_time)
        last_time = t
        dx = 0.0 if x_s is None else (x - x_s) * freq
        dx_s = dx if dx_s is None else alpha(dcutoff) * dx + (1 - alpha(dcutoff)) * dx_s
        cutoff = mincutoff + beta * abs(dx_s)
        x_s = x if x_s is None else alpha(cutoff) * x + (1 - alpha(cutoff)) * x_s
        out.append(x_s)
    return out


def test_one_euro_filter_with_timestamps_is_the_reference_filter_at_irregular_intervals():
    rng = np.random.default_rng(3)
    times = 1.0 + np.cumsum(rng.uniform(0.02, 0.3, 40))  # a live source: frames dropped unevenly
    times[17] = times[16]  # a timestamp that does not move forward keeps the last interval
    samples = 200.0 * np.sin(times) + rng.normal(0.0, 2.0, 40)
    expected = _reference_one_euro(list(samples), list(times), 30.0, 1.0, 0.2, 1.0)
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.2, d_cutoff=1.0, fps=30.0)
    got = [float(filt(np.array([x]), timestamp=t)[0]) for x, t in zip(samples, times)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    plain = OneEuroFilter(fps=30.0)  # without timestamps: every sample 1/30 s apart, far from the above
    assert not np.allclose([float(plain(np.array([x]))[0]) for x in samples], expected, atol=1.0)


def test_tracker_with_timestamps_one_frame_apart_tracks_exactly_as_without():
    rng = np.random.default_rng(4)
    frames = [frame(*(person(100 + 7 * t + 150 * i) + np.concatenate([rng.normal(0, 1.5, (17, 2)), np.zeros((17, 1))], 1)
                      for i in range(3 if t % 9 else 2))) for t in range(40)]
    params = TrackerParams(smooth=True, fps=25.0, max_age=3)
    plain = Tracker(params).track(frames)
    timed_tracker = Tracker(params)
    timed = [timed_tracker.update(p, timestamp=1000.0 + t / 25.0) for t, p in enumerate(frames)]
    for a, b in zip(plain, timed):
        assert a.track_ids.tolist() == b.track_ids.tolist()
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)


def test_tracker_follows_a_fast_person_across_dropped_frames_by_their_capture_times():
    # 6 px per 1/25 s; the frames processed are 1, then 6 frames of time apart, as a slow model drops them
    fps, speed = 25.0, 6.0
    taken = [0, 1, 2, 3, 9, 10, 16, 17, 23, 24, 30]
    people = [frame(person(50 + speed * n)) for n in taken]
    timed = Tracker(TrackerParams(fps=fps))
    ids = [timed.update(p, timestamp=n / fps).track_ids.tolist() for p, n in zip(people, taken)]
    assert ids[2:] == [[0]] * (len(taken) - 2)  # confirmed at the third frame, then the same person throughout
    # counted in frames instead, the velocity of a 1-frame step is taken for a 6-frame gap: the person is lost
    untimed = [p.track_ids.tolist() for p in Tracker(TrackerParams(fps=fps)).track(people)]
    assert untimed[2:4] == [[0], [0]] and all(ids != [0] for ids in untimed[4:])


def test_tracker_with_timestamps_forgets_a_person_after_max_age_frames_of_time():
    params = TrackerParams(fps=10.0, max_age=5, confirm_frames=1)  # 0.5 s
    for gap, kept in ((0.45, True), (0.65, False)):
        tracker = Tracker(params)
        tracker.update(frame(person(100)), timestamp=0.0)
        tracker.update(frame(), timestamp=gap)  # one frame without the person, `gap` s later, whatever the rate
        ids = tracker.update(frame(person(100)), timestamp=gap + 0.05).track_ids.tolist()
        assert ids == ([0] if kept else [1])


def test_tracker_refuses_timestamps_on_some_frames_only():
    tracker = Tracker()
    tracker.update(frame(person(100)), timestamp=0.0)
    with pytest.raises(ValueError, match="timestamp"):
        tracker.update(frame(person(100)))
    with pytest.raises(ValueError, match="finite"):
        Tracker().update(frame(), timestamp=float("nan"))
