"""``openpose-lite serve``: the API through Starlette's test client, a real uvicorn on loopback for what only
a socket shows (a body that never ends, a client that sends slowly, a full queue under concurrent
clients), and the command itself against ``openpose-lite infer``.

The people of the known-coordinates test are drawn by the scene generator and found by a stand-in
network that returns the ground-truth maps of the scene it is shown (tests/test_predictor.py), so
the answer must be where they were drawn. Every load here is bounded in count and time and goes
to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import import_optional
from test_predictor import CODEC, INPUT_SIZE, GroundTruthMaps, make_scene, max_error_px

from openpose_lite.cli import build_parser, main
from openpose_lite.cli.models_args import build_predictor
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.serve import MicroBatcher, ServeOptions
from openpose_lite.skeleton import COCO_17, OPENPOSE_18
from openpose_lite.structures import Poses

import_optional("starlette")
uvicorn = import_optional("uvicorn")
httpx = import_optional("httpx2")

from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from openpose_lite.serve import create_app, uvicorn_config  # noqa: E402

TOKEN = "a-token-of-some-length"


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """A real decompression bomb: an 8-bit grey PNG of width x height zeros, a few tens of KB compressed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), bytes(width + 1)  # a filter byte, then the row
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def openpose_people(answer: dict) -> Poses:
    """The people of an answer's OpenPose document as Poses (OpenPose-18, the COCO results' scores)."""
    flat = [p["pose_keypoints_2d"] for p in answer["openpose"]["people"]]
    return Poses(np.asarray(flat, np.float32).reshape(-1, 18, 3), [r["score"] for r in answer["coco"]], OPENPOSE_18)


@pytest.fixture
def gated(checkpoint) -> BottomUpPredictor:
    """The tiny model behind a gate: each batch waits for ``gate``, so a test decides when the network is free;
    ``entered`` is set when a batch reaches the network, ``batches`` holds the sizes of those run."""
    predictor = BottomUpPredictor.from_checkpoint(checkpoint, device="cpu")
    predictor.gate, predictor.entered, predictor.batches = threading.Event(), threading.Event(), []
    plain = predictor.predict_batch

    def predict_batch(images, image_ids=None, batch_size=None):
        predictor.entered.set()
        assert predictor.gate.wait(30), "the test never opened the gate"
        predictor.batches.append(len(images))
        return plain(images)

    predictor.predict_batch = predict_batch
    return predictor


@contextlib.contextmanager
def served(app, options: ServeOptions):
    """``app`` on a real uvicorn in a thread, on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def raw_request(port: int, head: str, body_parts, pause: float = 0.0) -> tuple[int, bytes]:
    """Send ``head`` then ``body_parts`` over a plain socket (``pause`` seconds apart) until the server answers;
    returns (status, the answer's bytes). Sending stops as soon as an answer is there or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode())
        s.setblocking(False)
        answer = b""
        for part in body_parts:
            with contextlib.suppress(BlockingIOError):
                answer += s.recv(65536)
            if answer:
                break
            try:
                s.sendall(part)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        s.settimeout(20)
        with contextlib.suppress(ConnectionResetError):
            while True:  # until the whole answer (its Content-Length) is in, or the server closes
                end = answer.find(b"\r\n\r\n")
                length = re.search(rb"content-length: *(\d+)", answer[:end].lower()) if end >= 0 else None
                if length and len(answer) >= end + 4 + int(length.group(1)):
                    break
                more = s.recv(65536)
                if not more:
                    break
                answer += more
    return int(answer.split(b" ", 2)[1]), answer


# ------------------------------------------------------------------------------------------ answers
def test_pose_gives_back_the_people_drawn_at_known_coordinates_raw_and_multipart():
    scenes = [make_scene(3, (240, 320)), make_scene(4, (300, 200))]
    predictor = BottomUpPredictor(GroundTruthMaps(scenes, CODEC), CODEC, input_size=INPUT_SIZE, device="cpu")
    with TestClient(create_app(predictor)) as client:
        for image, truth in scenes:
            raw = client.post("/v1/pose", content=png(image), headers={"Content-Type": "image/png"})
            form = client.post("/v1/pose", files={"image": ("scene.png", png(image), "image/png")})
            assert raw.status_code == form.status_code == 200, (raw.text, form.text)
            answer = raw.json()
            assert form.json() == answer
            assert (answer["width"], answer["height"]) == (image.shape[1], image.shape[0])
            assert (answer["skeleton"], answer["coco_skeleton"]) == (OPENPOSE_18.name, COCO_17.name)
            people = openpose_people(answer)
            assert max_error_px(people, truth) < 0.5
            # The COCO results are the same people in COCO-17 order, each boxed by its drawn keypoints.
            coco = np.asarray([r["keypoints"] for r in answer["coco"]]).reshape(-1, 17, 3)
            np.testing.assert_allclose(coco, people.as_skeleton(COCO_17).keypoints, atol=2e-3)
            for person in truth:
                drawn = person[person[:, 2] > 0, :2]
                box = np.r_[drawn.min(0), drawn.max(0) - drawn.min(0)]
                assert min(np.abs(np.asarray(r["bbox"]) - box).max() for r in answer["coco"]) < 1.0

            drawing = client.post("/v1/pose?render=1", content=png(image))
            assert drawing.headers["content-type"] == "image/jpeg"
            rendered = cv2.imdecode(np.frombuffer(drawing.content, np.uint8), cv2.IMREAD_COLOR)
            assert rendered.shape == image.shape
            at = truth[truth[..., 2] > 0][:, :2].round().astype(int)  # a keypoint dot is drawn on each
            changed = np.abs(rendered[at[:, 1], at[:, 0]].astype(int) - image[at[:, 1], at[:, 0]]).max(axis=1)
            assert np.mean(changed > 40) > 0.9


def test_model_and_health_describe_the_served_model(checkpoint):
    predictor = BottomUpPredictor.from_checkpoint(checkpoint, device="cpu")
    with TestClient(create_app(predictor)) as client:
        model = client.get("/v1/model").json()
        health = client.get("/v1/health").json()
    assert (model["architecture"], model["branch"], model["backend"], model["precision"]) == (
        "vgg19_paf", "bottomup", "torch", "fp32")
    assert model["input_size"] == 128 and model["scales"] == [1.0] and model["flip"] is False
    assert model["hands"] is False and model["faces"] is False
    assert model["skeleton"]["keypoints"] == list(OPENPOSE_18.keypoints)
    assert model["skeleton"]["limbs"] == [list(limb) for limb in OPENPOSE_18.limbs]
    assert model["coco_skeleton"]["keypoints"] == list(COCO_17.keypoints)
    assert health["status"] == "ok" and health["waiting"] == 0


def test_the_command_answers_curl_with_the_people_infer_writes(checkpoint, dataset, tmp_path):
    """`openpose-lite serve --weights W`, then `curl -F image=@photo.jpg .../v1/pose`: infer's people."""
    photo = dataset / "images" / "000001.jpg"
    assert main(["infer", str(photo), "--weights", str(checkpoint), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    written = json.loads((tmp_path / "out" / "000001_keypoints.json").read_text())
    results = json.loads((tmp_path / "out" / "results_coco.json").read_text())
    assert written["people"]
    with serve_command(["--weights", str(checkpoint)]) as url:
        answer = httpx.post(f"{url}v1/pose", files={"image": ("photo.jpg", photo.read_bytes())}, timeout=60).json()
    # Two processes may sum in another order: equal to float32 rounding.
    flat = lambda people: np.asarray([p["pose_keypoints_2d"] for p in people])  # noqa: E731
    np.testing.assert_allclose(flat(answer["openpose"]["people"]), flat(written["people"]), atol=2e-3)
    np.testing.assert_allclose([r["keypoints"] for r in answer["coco"]], [r["keypoints"] for r in results], atol=2e-3)
    np.testing.assert_allclose([r["score"] for r in answer["coco"]], [r["score"] for r in results], atol=1e-5)


@contextlib.contextmanager
def serve_command(arguments: list[str], timeout: float = 90.0):
    """``openpose-lite serve ... --port 0`` in a subprocess; yields the page's URL (from what it prints) once
    ``/v1/health`` answers, and stops it (SIGTERM) afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "openpose_lite", "serve", *arguments, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline, url = time.monotonic() + timeout, None
        while url is None:
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            found = [m.group(1) for m in map(re.compile(r"open (http://127\.0\.0\.1:\d+/)").search, lines) if m]
            url = found[0] if found else time.sleep(0.05)
        token = arguments[arguments.index("--token") + 1] if "--token" in arguments else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}v1/health", headers=headers, timeout=max(1.0, deadline - time.monotonic())).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        reader.join(5)


# ------------------------------------------------------------------------------------------ batching
def test_concurrent_images_of_one_size_share_a_network_call_and_a_failing_image_fails_alone():
    calls: list[list[tuple[int, ...]]] = []
    called_at: list[float] = []

    def predict_batch(images):
        calls.append([image.shape[:2] for image in images])
        called_at.append(time.monotonic())
        if any(not image.any() for image in images):  # an all-black image is "one the model fails on"
            raise ValueError("a black image")
        return [Poses.empty() for _ in images]

    a, b, black = np.ones((32, 48, 3), np.uint8), np.ones((48, 32, 3), np.uint8), np.zeros((32, 48, 3), np.uint8)
    batcher = MicroBatcher(predict_batch, wait_s=0.4, limit=4, bound=16)

    async def clients():
        return await asyncio.gather(*(batcher.predict(image, 10) for image in [a, a, b, a, a, black, a]),
                                    return_exceptions=True)

    start = time.monotonic()
    outcomes = asyncio.run(clients())
    batcher.close()
    # Four of one size in one call, at once (the batch is full); the other size apart; the last two
    # waited for company; the failing batch re-run one image at a time, so only the black image fails.
    assert called_at[0] - start < 0.3 and called_at[2] - start >= 0.4
    assert calls[:2] == [[(32, 48)] * 4, [(48, 32)]]
    assert calls[2:] == [[(32, 48)] * 2, [(32, 48)], [(32, 48)]]
    assert [type(o).__name__ for o in outcomes] == ["Poses"] * 5 + ["ValueError", "Poses"]
    assert batcher.stats["largest_batch"] == 4


def test_a_full_queue_answers_503_with_retry_after_and_loses_no_accepted_request(gated, dataset):
    image = (dataset / "images" / "000001.jpg").read_bytes()
    options = ServeOptions(queue_bound=3, batch_limit=1, batch_wait_ms=0)
    app = create_app(gated, options)
    with served(app, options) as url, ThreadPoolExecutor(12) as pool:
        post = lambda _: httpx.post(f"{url}/v1/pose", content=image, timeout=20)  # noqa: E731
        running = pool.submit(post, 0)
        assert gated.entered.wait(20)  # the network holds the first image
        queued = [pool.submit(post, i) for i in range(3)]
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/v1/health").json()["waiting"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = list(pool.map(post, range(5)))  # answered at once, while the gate is still closed
        assert not running.done()
        gated.gate.set()
        accepted = [running.result(), *(f.result() for f in queued)]
        health = httpx.get(f"{url}/v1/health").json()
    assert [r.status_code for r in refused] == [503] * 5
    assert all(int(r.headers["Retry-After"]) >= 1 and "busy" in r.json()["error"] for r in refused)
    assert [r.status_code for r in accepted] == [200] * 4
    assert len({json.dumps(r.json()) for r in accepted}) == 1  # the same image, the same people
    assert (health["images"], health["refused"], health["waiting"]) == (4, 5, 0)
    assert gated.batches == [1, 1, 1, 1]


def test_a_request_the_network_cannot_answer_in_time_gets_504_and_the_server_goes_on(gated, dataset):
    image = (dataset / "images" / "000001.jpg").read_bytes()
    with TestClient(create_app(gated, ServeOptions(request_timeout_s=2.0))) as client:
        late = client.post("/v1/pose", content=image)
        gated.gate.set()
        assert late.status_code == 504 and "no answer within 2 s" in late.json()["error"]
        assert client.post("/v1/pose", content=image).status_code == 200


# ------------------------------------------------------------------------------------------ hostile clients
def test_bad_bodies_get_their_4xx_while_other_clients_are_served(checkpoint, dataset, monkeypatch):
    predictor = BottomUpPredictor.from_checkpoint(checkpoint, device="cpu")
    decoded: list[int] = []  # the size of every buffer OpenCV is asked to decode
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: decoded.append(len(buf)) or imdecode(buf, flags))
    options = ServeOptions(max_body_bytes=1 << 20, request_timeout_s=2.0)
    good = (dataset / "images" / "000001.jpg").read_bytes()
    scene = png(cv2.imread(str(dataset / "images" / "000002.jpg")))
    with served(create_app(predictor, options), options) as url, ThreadPoolExecutor(4) as pool:
        port = int(url.rsplit(":", 1)[1])
        # A client that sends its body a few bytes at a time, for longer than the request may take.
        slow_head = f"POST /v1/pose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(good)}\r\n\r\n"
        slow = pool.submit(raw_request, port, slow_head, [good[i:i + 16] for i in range(0, 400, 16)], 0.2)
        started = time.monotonic()
        served_meanwhile = httpx.post(f"{url}/v1/pose", content=good, timeout=30)
        assert served_meanwhile.status_code == 200 and not slow.done()

        truncated = httpx.post(f"{url}/v1/pose", content=scene[: len(scene) // 2])
        bomb_png = png_bomb(6000, 6000)
        bomb = httpx.post(f"{url}/v1/pose", files={"image": ("bomb.png", bomb_png)})
        huge_head = "POST /v1/pose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1073741824\r\n\r\n"
        huge_status, huge = raw_request(port, huge_head, [bytes(64 << 10)] * 64)
        chunked = httpx.post(f"{url}/v1/pose", content=(bytes(64 << 10) for _ in range(40)))  # 2.5 MiB, no length

        slow_status, slow_answer = slow.result(timeout=30)
        slow_seconds = time.monotonic() - started
        after = httpx.post(f"{url}/v1/pose", files={"image": ("photo.jpg", good)}, timeout=30)
    assert truncated.status_code == 400 and "cannot read image in the request body" in truncated.json()["error"]
    assert bomb.status_code == 413 and "bomb.png is 6000x6000 = 36000000 pixels" in bomb.json()["error"]
    assert len(bomb_png) not in decoded and len(good) in decoded  # refused from its header, never decoded
    assert huge_status == 413 and b"1073741824 bytes, above this server's limit of 1048576 bytes" in huge
    assert chunked.status_code == 413 and "more than this server's limit" in chunked.json()["error"]
    assert slow_status == 408 and b"did not arrive within 2 s" in slow_answer and slow_seconds < 10
    assert after.status_code == 200 and after.json() == served_meanwhile.json()


def test_the_token_is_needed_on_every_request_and_the_page_passes_it_on(checkpoint):
    predictor = BottomUpPredictor.from_checkpoint(checkpoint, device="cpu")
    with TestClient(create_app(predictor, ServeOptions(token=TOKEN))) as client:
        for path in ("/", "/app.js", "/v1/model", "/v1/health"):
            refused = client.get(path)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert client.post("/v1/pose", content=b"x" * 100).status_code == 401  # before the body is looked at
        assert client.get("/v1/health", headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
        assert client.get("/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect("/v1/ws"):
                pass
        assert closed.value.code == 1008
        # The page opened with ?token= sets a cookie, with which its own requests and its WebSocket get in.
        assert client.get(f"/?token={TOKEN}").status_code == 200
        assert client.get("/app.js").status_code == 200 and client.get("/v1/model").status_code == 200
        with client.websocket_connect("/v1/ws"):
            pass


def test_a_host_other_machines_reach_is_refused_at_start_without_a_token(tmp_path, capsys):
    # Weights that do not exist: the host is refused first, before any file is looked at.
    assert main(["serve", "--weights", str(tmp_path / "none.pt"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["openpose-lite serve: error: --host: expected a loopback address (127.0.0.1, ::1, localhost) unless "
                   "a token is set: any other host accepts connections from other machines, got '0.0.0.0'"]
    with pytest.raises(ValueError, match="serve.host"):
        ServeOptions(host="192.168.1.10")
    assert ServeOptions(host="0.0.0.0", token=TOKEN).host == "0.0.0.0"
    assert ServeOptions(host="::1").host == "::1"


def test_webcam_frames_are_answered_newest_first(gated, dataset):
    frames = [(dataset / "images" / f"00000{i}.jpg").read_bytes() for i in (1, 2, 3)]
    with TestClient(create_app(gated)) as client, client.websocket_connect("/v1/ws") as ws:
        ws.send_bytes(frames[0])
        assert gated.entered.wait(20)  # frame 0 is in the network
        for frame in (frames[1], frames[2], frames[0]):  # frames 1 to 3 arrive meanwhile
            ws.send_bytes(frame)
        time.sleep(0.3)
        gated.gate.set()
        first, second = ws.receive_json(), ws.receive_json()
    # Frames 1 and 2 were replaced by frame 3 before the network was free: never run (``dropped`` counts
    # them as the answers leave).
    assert (first["frame"], first["dropped"]) == (0, 2)
    assert (second["frame"], second["dropped"]) == (3, 2)
    assert second["openpose"] == first["openpose"]  # frame 3 is frame 0's image
    assert gated.batches == [1, 1]


def test_with_a_hand_model_the_people_come_with_their_hands(checkpoint, dataset, tmp_path):
    from caffe_reference import seeded_weights

    from openpose_lite.cli.models_args import hands_and_faces
    from openpose_lite.models.caffemodel import state_dict_layers, write_caffemodel
    from openpose_lite.models.cmu_caffe import build_cpm

    hand = tmp_path / "pose_iter_102000.caffemodel"
    net = seeded_weights(build_cpm(21, width_scale=0.125), 1)
    write_caffemodel(hand, state_dict_layers(net.state_dict(), net.caffe_layer_names()))
    args = build_parser().parse_args(["serve", "--weights", str(checkpoint), "--hand", str(hand), "--device", "cpu"])
    with TestClient(create_app(hands_and_faces(args, build_predictor(args)))) as client:
        model = client.get("/v1/model").json()
        answer = client.post("/v1/pose", content=(dataset / "images" / "000001.jpg").read_bytes()).json()
    assert (model["hands"], model["faces"], model["architecture"]) == (True, False, "vgg19_paf")
    people = answer["openpose"]["people"]
    assert people and all(len(p["hand_left_keypoints_2d"]) == len(p["hand_right_keypoints_2d"]) == 63 for p in people)
    assert all(p["face_keypoints_2d"] == [] for p in people)


def test_the_serve_options_are_the_infer_model_options(checkpoint):
    args = build_parser().parse_args(["serve", "--weights", str(checkpoint), "--scales", "1.0", "0.5", "--flip",
                                      "--input-size", "96", "--batch-size", "3"])
    predictor = build_predictor(args)
    assert (predictor.scales, predictor.flip, predictor.input_size) == ((1.0, 0.5), True, 96)
    assert args.batch_size == 3 and build_parser().parse_args(["serve"]).batch_size == 0
    # Without --batch-size, batches by device: on the CPU one image keeps every core busy, so one at a time.
    assert create_app(predictor).state.service.batcher.limit == 1
    assert create_app(predictor, ServeOptions(batch_limit=3)).state.service.batcher.limit == 3
