"""Tracking benchmark: MOTA, IDF1 and ID switches on generated videos, and the time per frame.

Videos come from openpose_lite.data.synthetic_video (people walking both ways, crossing,
hiding each other, entering and leaving). Each row tracks per-frame poses and scores them
against the true ids with py-motmetrics, the distance of two people being 1 - OKS (at most
0.5). Row (a): the true poses spoiled by Gaussian keypoint noise and dropped people and
keypoints (``simulate_detections``), for openpose_lite's Tracker, the Tracker with One Euro
smoothing, and a greedy nearest-neighbour baseline; every person is tracked (``min_score`` 0:
these people's scores are random, not a network's). Row (b), with ``--checkpoint``: a trained
bottom-up model's own people on the same videos' frames (e.g. the quickstart's
``runs/vgg19_synthetic_cpu/best.pt``), tracked and scored the same way, the Tracker at its
defaults, and once more with ``min_score`` ``--min-score`` (default 0: every person, the
network's low-scoring fragments of people included, which is what the default leaves out).
``--seed 5 --videos 10`` gives the videos the tracker's defaults were chosen on.

The time per frame is that of ``Tracker.update`` alone at exactly ``--timing-people`` people
per frame, the median over frames after a warm-up. Run:

    python benchmarks/bench_tracking.py [--videos 3] [--frames 150] [--people 10] [--noise 2.0] [--checkpoint FILE] [--min-score 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from openpose_lite.data.synthetic_video import VideoConfig, generate_video, ground_truth_poses, simulate_detections
from openpose_lite.structures import Poses
from openpose_lite.tracking import Tracker, TrackerParams, evaluate_tracking, greedy_nearest_neighbour

# Ids of video v are offset by v * this, so that many videos score as one sequence.
_VIDEO_ID_STRIDE = 1_000_000


def tracking_metrics(predicted: Sequence[Sequence[Poses]], truth: Sequence[Sequence[Poses]]) -> dict[str, float]:
    """MOT metrics of tracked videos: per video, per frame, tracked Poses (``track_ids`` set) and the true Poses.

    The videos are scored as one sequence (ids made distinct per video), so MOTA and IDF1 pool
    every person-frame. See ``openpose_lite.tracking.evaluate_tracking`` for the rules.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"tracking_metrics: {len(predicted)} predicted videos for {len(truth)} true ones")
    pred_all, truth_all = [], []
    for v, (pred_video, truth_video) in enumerate(zip(predicted, truth)):
        for pred, gt in zip(pred_video, truth_video):
            ids = pred.track_ids
            if ids is not None:
                ids = np.where(ids >= 0, ids + v * _VIDEO_ID_STRIDE, -1)
            pred_all.append(Poses(pred.keypoints, pred.scores, pred.skeleton, ids))
            truth_all.append(Poses(gt.keypoints, gt.scores, gt.skeleton, gt.track_ids + v * _VIDEO_ID_STRIDE))
        if len(pred_video) != len(truth_video):
            raise ValueError(f"tracking_metrics: video {v} has {len(pred_video)} predicted frames for {len(truth_video)} true ones")
    return evaluate_tracking(pred_all, truth_all)


def _crowd(people: int, frames: int, seed: int, noise_px: float) -> list[Poses]:
    """Exactly ``people`` walkers per frame on a 1280x720 frame (true poses of a generated video, moved)."""
    rng = np.random.default_rng(seed)
    template = next(t for t in ground_truth_poses(generate_video(VideoConfig(num_frames=1, seed=seed))) if (t.keypoints[..., 2] > 0).all(1).any())
    kps0 = template.keypoints[(template.keypoints[..., 2] > 0).all(1)][0]
    kps0 = kps0 - np.array([*kps0[:, :2].mean(0), 0.0], np.float32)
    cols = int(np.ceil(np.sqrt(people * 16 / 9)))
    start = np.array([[(i % cols + 0.5) * 1280 / cols, (i // cols + 0.5) * 720 / np.ceil(people / cols)] for i in range(people)])
    speed = rng.uniform(-2.0, 2.0, (people, 2))
    out = []
    for f in range(frames):
        kps = np.repeat(kps0[None], people, 0)
        kps[..., :2] += (start + speed * f)[:, None, :] + rng.normal(0.0, noise_px, (people, kps0.shape[0], 2))
        out.append(Poses(kps[rng.permutation(people)], np.ones(people, np.float32), template.skeleton))
    return out


def time_per_frame_ms(params: TrackerParams, frames: Sequence[Poses], warmup: int = 20) -> float:
    """Median wall time of ``Tracker.update`` over ``frames`` after ``warmup`` frames, in ms."""
    tracker = Tracker(params)
    times = []
    for i, poses in enumerate(frames):
        t0 = time.perf_counter()
        tracker.update(poses)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"))
    parser.add_argument("--noise", type=float, default=2.0, help="keypoint noise, px per coordinate")
    parser.add_argument("--drop-person", type=float, default=0.05)
    parser.add_argument("--drop-keypoint", type=float, default=0.1)
    parser.add_argument("--timing-people", type=int, default=20)
    parser.add_argument("--timing-frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="also track a trained bottom-up checkpoint's predictions on the videos (row b)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="row (b) also tracks with this TrackerParams.min_score (default 0: every person; the "
                        f"Tracker rows use its default, {TrackerParams.min_score})")
    args = parser.parse_args(argv)
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print()

    truth, detections, predicted = [], [], []
    predictor = None
    if args.checkpoint is not None:
        from openpose_lite.inference import BottomUpPredictor

        predictor = BottomUpPredictor.from_checkpoint(args.checkpoint, device="cpu")
    for v in range(args.videos):
        cfg = VideoConfig(image_hw=tuple(args.size), num_frames=args.frames, num_people=args.people, seed=args.seed + v)
        frames = generate_video(cfg)
        gt = ground_truth_poses(frames, min_visible=3)
        truth.append(gt)
        detections.append(simulate_detections(gt, seed=args.seed + v, keypoint_noise_px=args.noise,
                                              drop_person_prob=args.drop_person, drop_keypoint_prob=args.drop_keypoint))
        if predictor is not None:
            print(f"video {v + 1}/{args.videos}: the model's people, frame by frame ...", file=sys.stderr, flush=True)
            predicted.append([predictor(frame.image) for frame in frames])

    every = TrackerParams(min_score=0.0)  # simulated people's scores are random: none is left out
    methods: dict[str, Callable[[list[Poses]], list[Poses]]] = {
        "Tracker": lambda frames: Tracker(every).track(frames),
        "Tracker + One Euro": lambda frames: Tracker(dataclasses.replace(every, smooth=True)).track(frames),
        "greedy nearest neighbour": greedy_nearest_neighbour,
    }
    source = (f"(a) true poses + {args.noise:g} px noise, {args.drop_person:.0%} people and "
              f"{args.drop_keypoint:.0%} keypoints dropped")
    rows = [(source, name, tracking_metrics([track(d) for d in detections], truth)) for name, track in methods.items()]
    if predicted:
        model = f"(b) {args.checkpoint}'s own people (input {predictor.input_size}, one scale)"
        # the defaults leave out the network's low-scoring fragments of people; --min-score shows what that buys
        for name, track in ((f"Tracker (defaults: min_score {TrackerParams.min_score:g})", Tracker().track),
                            ("greedy nearest neighbour", greedy_nearest_neighbour),
                            (f"Tracker, min_score {args.min_score:g}", Tracker(TrackerParams(min_score=args.min_score)).track)):
            rows.append((model, name, tracking_metrics([track(p) for p in predicted], truth)))
    # what the rules alone cost (confirmation delay, people hidden longer than max_age)
    rows.append(("true poses as they are (reference)", "Tracker",
                 tracking_metrics([Tracker(every).track(t) for t in truth], truth)))

    print(f"Tracking on {args.videos} generated videos ({args.size[0]}x{args.size[1]}, {args.frames} frames, "
          f"{args.people} people each, seeds {args.seed}..{args.seed + args.videos - 1}); distance 1 - OKS, at most 0.5")
    print()
    print("| poses | tracker | person-frames | MOTA | IDF1 | ID switches | switches / 100 person-frames | false positives | misses | MOTP (1 - OKS) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for src, name, m in rows:
        print(f"| {src} | {name} | {m['person_frames']} | {m['mota']:.3f} | {m['idf1']:.3f} | {m['id_switches']} | "
              f"{100 * m['id_switches'] / max(m['person_frames'], 1):.2f} | {m['false_positives']} | {m['misses']} | {m['motp']:.3f} |")
    print()

    crowd = _crowd(args.timing_people, args.timing_frames, args.seed, args.noise)
    print(f"Tracker.update time at {args.timing_people} people per frame ({platform.processor() or platform.machine()}, "
          f"median of {args.timing_frames - 20} frames after 20 warm-up frames)")
    print()
    print("| smoothing | ms per frame |")
    print("|---|---:|")
    for label, params in (("off", TrackerParams()), ("One Euro", TrackerParams(smooth=True))):
        print(f"| {label} | {time_per_frame_ms(params, crowd):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
