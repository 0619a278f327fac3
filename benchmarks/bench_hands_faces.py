"""What OpenPose's hands and faces cost per person, beside the body network: PyTorch fp32 and OpenVINO int8.

The networks are CMU's at full size with seeded random weights (their speed does not depend on the
weights): the BODY_25 body network at input height 368, the hand and face networks (6 stages) on
368 x 368 crops. Generated 720 x 1280 scenes of people in the BODY_25 layout (``--people`` folders of
``--images`` scenes each; people 0.45 to 0.9 of the image high, as many as fit, so that their faces
pass OpenPose's 40 px minimum) are run as ``infer --hand --face`` runs them: the body predictor's call
(letterbox, network, decoding) per image, then :class:`~openpose_lite.inference.hands_faces.HandFaceEstimator`
on the image's people, every crop of a kind in one batch. A random body network finds nobody, so the
hands and faces are cut around the scenes' annotated people (the boxes OpenPose's rules give for
them): what a trained body model hands on. Per image: the body time, then the hand stage (both hands
of every person) and the face stage, each divided by the people in the image; the crops run are counted.

int8 is quantised by NNCF: the body network on ``--calibration-images`` generated scenes (letterboxed
as the predictor runs them), the hand and face networks on the crops of those scenes' annotated people
(:func:`~openpose_lite.inference.hands_faces.part_calibration`). Each configuration is built and
warmed up on the first scene, then every scene is timed once per ``--repeats`` round (the median is
reported). Converted models are cached in a temporary folder, removed at the end.

    python benchmarks/bench_hands_faces.py [--people 1 4 8] [--images 1] [--repeats 1] [--threads 1]
        [--calibration-images 4] [--backends torch-fp32 openvino-int8]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openpose_lite.architectures import architecture
from openpose_lite.cmu_skeletons import BODY_25
from openpose_lite.config import load_config
from openpose_lite.data.figures import People
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.devices import THREADS_HELP, cpu_description, set_threads
from openpose_lite.images import read_image
from openpose_lite.inference import PredictorOptions, build_predictor
from openpose_lite.inference.hands_faces import NET_INPUT, HandFaceEstimator, part_calibration
from openpose_lite.inference.network import make_runner
from openpose_lite.models.cmu_caffe import build_body25, build_cpm
from openpose_lite.models.weights import LoadedWeights
from openpose_lite.structures import Poses

BACKENDS = {"torch-fp32": ("torch", "fp32"), "openvino-fp32": ("openvino", "fp32"),
            "openvino-int8": ("openvino", "int8")}
SIZE = (720, 1280)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, nargs="+", default=[1, 4, 8], help="people per scene, one folder each")
    p.add_argument("--images", type=int, default=1, help="scenes per folder")
    p.add_argument("--repeats", type=int, default=1, help="timed rounds over every scene (median reported)")
    p.add_argument("--threads", type=int, default=1, help=f"{THREADS_HELP}; 1 by default: the machine is shared")
    p.add_argument("--calibration-images", type=int, default=4, help="generated scenes int8 is calibrated on")
    p.add_argument("--backends", nargs="+", default=["torch-fp32", "openvino-int8"], choices=list(BACKENDS))
    p.add_argument("--seed", type=int, default=0)
    return p


def scenes(folder: Path, count: int, seed: int, people: int | None) -> list[tuple[np.ndarray, Poses]]:
    """``count`` generated scenes written to ``folder`` and read back: (image, its annotated BODY_25 people)."""
    cfg = SceneConfig(image_hw=SIZE, person_height_range=(0.45, 0.9), occlusion_prob=0.0)
    ann = json.loads(write_dataset(folder, count, seed, cfg, num_people=people, bank=People(BODY_25)).read_text())
    out = []
    for info in ann["images"]:
        kps = np.array([a["keypoints"] for a in ann["annotations"] if a["image_id"] == info["id"]], np.float32)
        kps = kps.reshape(-1, BODY_25.num_keypoints, 3)
        kps[..., 2] = (kps[..., 2] > 0).astype(np.float32)  # labelled: found with score 1
        out.append((read_image(folder / "images" / info["file_name"]), Poses(kps, np.ones(len(kps)), BODY_25)))
    return out


def build(backend: str, precision: str, nets: dict[str, torch.nn.Module], calibration: Path,
          truth: dict[str, Poses]) -> tuple[Any, HandFaceEstimator, HandFaceEstimator, float]:
    """(body predictor, hand stage, face stage, seconds to build them) on one backend and precision."""
    started = time.perf_counter()
    cfg = load_config(None, ["model.arch=body25_paf"])
    int8 = precision == "int8"
    body = build_predictor(LoadedWeights(nets["body"], architecture("body25_paf"), None, cfg),
                           PredictorOptions(device="cpu", backend=backend, precision=precision, flip=False,
                                            calibration=calibration if int8 else None))
    calibration_images = [read_image(p) for p in sorted(calibration.iterdir())]

    def annotated(image: np.ndarray) -> Poses:  # a calibration scene's people, looked up by its pixels
        return truth[hashlib.sha1(image.tobytes()).hexdigest()]

    runners = {}
    for part in ("hand", "face"):
        cal = part_calibration(calibration_images, annotated, part, NET_INPUT, "generated scenes") if int8 else None
        runners[part] = make_runner(nets[part], ["heatmaps"], "cpu", precision, backend=backend, calibration=cal)
    return (body, HandFaceEstimator(hand_runner=runners["hand"]), HandFaceEstimator(face_runner=runners["face"]),
            time.perf_counter() - started)


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = set_threads(args.threads)
    torch.manual_seed(args.seed)
    nets = {"body": build_body25(BODY_25).eval(), "hand": build_cpm(21).eval(), "face": build_cpm(70).eval()}
    params = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in nets.items()}
    previous_cache = os.environ.get("OPENPOSE_LITE_CACHE")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_hands_faces_") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["OPENPOSE_LITE_CACHE"] = str(tmp / "cache")
        try:
            folders = {n: scenes(tmp / f"people{n}", args.images, args.seed + n, n) for n in args.people}
            calibration = scenes(tmp / "calibration", args.calibration_images, args.seed + 1000, None)
            truth = {hashlib.sha1(image.tobytes()).hexdigest(): people for image, people in calibration}
            for name in args.backends:
                body, hands, faces, seconds = build(*BACKENDS[name], nets, tmp / "calibration" / "images", truth)
                image, people = folders[args.people[0]][0]
                body.predict_batch([image])  # warm-up: first calls allocate
                hands(image, people.keypoints, BODY_25)
                faces(image, people.keypoints, BODY_25)
                for n, items in folders.items():
                    crops = [sum(len(stage.crops(image, people.keypoints, BODY_25)[0]) for image, people in items)
                             for stage in (hands, faces)]
                    times: dict[str, list[float]] = {"body": [], "hands": [], "face": []}
                    for _ in range(args.repeats):
                        for image, people in items:
                            times["body"].append(timed(lambda: body.predict_batch([image])))
                            times["hands"].append(timed(lambda: hands(image, people.keypoints, BODY_25)) / len(people))
                            times["face"].append(timed(lambda: faces(image, people.keypoints, BODY_25)) / len(people))
                    rows.append((name, n, *(1000 * float(np.median(t)) for t in times.values()), seconds,
                                 f"{crops[0]} / {crops[1]}"))
        finally:
            if previous_cache is None:
                os.environ.pop("OPENPOSE_LITE_CACHE", None)
            else:
                os.environ["OPENPOSE_LITE_CACHE"] = previous_cache

    print(f"CMU's networks at full size, random weights: BODY_25 body ({params['body']:.1f} M parameters) at input "
          f"height {load_config(None, ['model.arch=body25_paf']).codec.input_size}, hand ({params['hand']:.1f} M) and "
          f"face ({params['face']:.1f} M) on {NET_INPUT} x {NET_INPUT} crops; {SIZE[0]}x{SIZE[1]} generated scenes, "
          f"{args.images} per people count; {threads} threads on {os.cpu_count()} cores of {cpu_description()}; "
          f"median of {args.repeats} round(s); int8 calibrated on {args.calibration_images} generated scenes")
    print()
    print("| runtime | people | hand / face crops | body ms / image | hands ms / person | face ms / person "
          "| hands + face ms / person | image total ms | build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, body_ms, hands_ms, face_ms, seconds, crops in rows:
        print(f"| {name} | {n} | {crops} | {body_ms:.0f} | {hands_ms:.0f} | {face_ms:.0f} | {hands_ms + face_ms:.0f} "
              f"| {body_ms + n * (hands_ms + face_ms):.0f} | {seconds:.0f} |")
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    given = argv if argv is not None else sys.argv[1:]
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *given]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
