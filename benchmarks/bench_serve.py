"""``openpose-lite serve`` under load on loopback: requests/s and latency for 1, 4 and 16 clients, with and
without batching, and the server's memory after 100 and after 2,000 requests.

The server is the command users run, in its own process (``python -m openpose_lite serve ... --port 0``),
once with batching (``--batch-size 8 --batch-wait-ms 5``, the default on a GPU) and once without
(``--batch-size 1``, the default on the CPU). Each client is a thread with its own keep-alive connection that posts one
generated image (``--size``, JPEG) as the raw body, waits for the answer, and posts again, for
``--requests`` requests per client count and at most ``--seconds`` s. Printed per row: requests/s,
the median and 99th percentile latency (send to answer), the mean batch the server ran (its
``/v1/health``), and every status that was not 200.

Memory: a third server (the CPU's default, ``--memory-input-size``, so that 2,000 requests take a minute
or two) answers ``--memory-requests`` requests from 4 clients; its resident memory (VmRSS) is read
after 100, 1,000 and all of them.

The model is ``--weights FILE`` or, by default, the network of ``--arch`` at its published size with
random weights, saved as a checkpoint with its config (speed does not depend on the weights).

    python benchmarks/bench_serve.py [--arch mobilenet_paf|vgg19_paf | --weights FILE] [--size 240 320]
        [--requests 48] [--seconds 30] [--memory-requests 2000] [--memory-input-size 128] [--threads 0]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from openpose_lite.bench.config import BOTTOMUP_ARCHS  # noqa: E402
from openpose_lite.config import Config, config_to_dict  # noqa: E402
from openpose_lite.data.synthetic import SceneConfig, generate_scene  # noqa: E402
from openpose_lite.devices import cpu_description  # noqa: E402
from openpose_lite.factory import ModelConfig, build_model  # noqa: E402
from openpose_lite.training.checkpoint import save_checkpoint  # noqa: E402

CLIENTS = (1, 4, 16)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=BOTTOMUP_ARCHS, default="mobilenet_paf",
                   help="random-weight network at its published size (default: %(default)s)")
    p.add_argument("--weights", type=Path, help="a weights file instead (any layout serve --weights reads)")
    p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                   help="the posted image's size (default: 240 320)")
    p.add_argument("--requests", type=int, default=48, help="requests per row, all clients together (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=30.0, help="at most this long per row (default: %(default)s)")
    p.add_argument("--memory-requests", type=int, default=2000, help="requests of the memory run (default: %(default)s)")
    p.add_argument("--memory-input-size", type=int, default=128,
                   help="network input height of the memory run's server (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="serve --threads (default: %(default)s)")
    return p


@contextlib.contextmanager
def server(model: list[str], options: list[str]):
    """``openpose-lite serve`` in its own process on a free loopback port; yields (port, pid) once it answers."""
    command = [sys.executable, "-m", "openpose_lite", "serve", *model, "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = []
        for line in process.stdout:
            said.append(line)
            found = re.search(r"open http://127\.0\.0\.1:(\d+)/", line)
            if found:
                break
        else:
            raise RuntimeError(f"serve exited with {process.wait()}: {''.join(said[-5:])}")
        port = int(found.group(1))
        while True:
            with contextlib.suppress(OSError):
                if health(port)["status"] == "ok":
                    break
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(30)


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/health")
    return json.loads(conn.getresponse().read())


def rss_mib(pid: int) -> float:
    """The process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc")


def load(port: int, body: bytes, clients: int, requests: int, seconds: float,
         after: dict[int, Callable[[], None]] | None = None) -> tuple[list[float], Counter, float]:
    """``clients`` threads posting ``body`` until ``requests`` were sent or ``seconds`` passed.

    Returns (latencies of the 200 answers in s, count of each status, wall seconds). ``after``: called
    once when that many requests were answered (any status)."""
    lock, latencies, statuses, sent = threading.Lock(), [], Counter(), [0]
    after = dict(after or {})
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if sent[0] >= requests or time.monotonic() > deadline:
                    return
                sent[0] += 1
            start = time.perf_counter()
            conn.request("POST", "/v1/pose", body=body, headers={"Content-Type": "image/jpeg"})
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - start
            with lock:
                statuses[response.status] += 1
                if response.status == 200:
                    latencies.append(took)
                done = sum(statuses.values())
                call = after.pop(done, None)
            if call is not None:
                call()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    image, _, _ = generate_scene(np.random.default_rng(0), SceneConfig(image_hw=tuple(args.size)), num_people=3)
    body = cv2.imencode(".jpg", image)[1].tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights is not None:
            model, name = ["--weights", str(args.weights)], args.weights.name
        else:
            cfg = Config(model=ModelConfig(arch=args.arch))
            path = save_checkpoint(Path(tmp) / f"{args.arch}.pt", model_state=build_model(cfg.model).state_dict(),
                                   config=config_to_dict(cfg))
            model, name = ["--checkpoint", str(path)], f"{args.arch} (random weights)"
        print(f"CPU: {cpu_description()}")
        print(f"model {name}; image {args.size[0]}x{args.size[1]} JPEG ({len(body)} bytes); serve --threads {args.threads}")
        print("| batching | clients | requests | requests/s | p50 latency | p99 latency | mean batch | not 200 |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        threads = ["--threads", str(args.threads)]
        for label, options in (("off (--batch-size 1)", ["--batch-size", "1"]),
                              ("on (--batch-size 8, 5 ms)", ["--batch-size", "8", "--batch-wait-ms", "5"])):
            with server(model, [*threads, *options]) as (port, _):
                load(port, body, 2, 4, args.seconds)  # warm-up: the first calls of a network are slower
                for clients in CLIENTS:
                    before = health(port)
                    latencies, statuses, wall = load(port, body, clients, args.requests, args.seconds)
                    now = health(port)
                    batch = (now["images"] - before["images"]) / max(1, now["batches"] - before["batches"])
                    others = ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items()) if s != 200) or "none"
                    ms = np.percentile(latencies, [50, 99]) * 1000 if latencies else (float("nan"),) * 2
                    print(f"| {label} | {clients} | {sum(statuses.values())} | {len(latencies) / wall:.2f} | "
                          f"{ms[0]:.0f} ms | {ms[1]:.0f} ms | {batch:.2f} | {others} |", flush=True)

        memory = ["--input-size", str(args.memory_input_size), *threads]
        with server(model, memory) as (port, pid):
            marks = {n: None for n in (100, 1000, args.memory_requests) if n <= args.memory_requests}
            take = {n: (lambda n=n: marks.__setitem__(n, rss_mib(pid))) for n in marks}
            latencies, statuses, wall = load(port, body, 4, args.memory_requests, 3600.0, after=take)
            print(f"\nmemory: {args.memory_requests} requests from 4 clients (input {args.memory_input_size}), "
                  f"{len(latencies) / wall:.1f} requests/s, statuses {dict(statuses)}")
            print("  " + ", ".join(f"after {n}: {mib:.0f} MiB" for n, mib in marks.items()))


if __name__ == "__main__":
    main()
