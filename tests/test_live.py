"""Live sources: ``infer`` on a stream served by the test itself, newest frame first.

Each test serves a live MJPEG stream on 127.0.0.1 (:class:`~openpose_lite.data.mjpeg_stream.MjpegServer`:
``http.server`` in a thread, ``multipart/x-mixed-replace``, generated frames at a fixed rate,
a free port, each frame's number drawn on it) and reads it through OpenCV's FFmpeg backend, as a
user's IP camera would be read. What they prove: the reader hands out the newest frame and
counts the others as dropped; a slow model drops frames and still ends soon after the stream;
the stream's end, ``--max-frames``, ``--duration``, Ctrl-C and SIGTERM end with exit 0 and valid
files; a server that dies is retried (``--reconnect``) then reported (exit 1, what was processed
kept); an unreachable port, a silent server or a missing camera exit 2 within seconds, naming it.
A hostile server (``MjpegServer(faults=...)``): a stall mid-JPEG is silence (lost, exit 1); a
frame claiming 30000 x 30000 pixels, one that is no image, or a part without its boundary is
skipped and counted, the stream read on to its end; only a closed connection ends a stream.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from openpose_lite import live
from openpose_lite.cli import live as live_cli
from openpose_lite.cli import main
from openpose_lite.data.mjpeg_stream import MjpegServer, frame_number_of
from openpose_lite.io import stale_temp_files
from openpose_lite.live import LatestFrameReader, LiveSource, is_stream_url

REPO = Path(__file__).resolve().parents[1]
HW = (96, 128)


def _free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _infer(url: str, checkpoint: Path, out: Path, *extra: str) -> tuple[int, float]:
    """Run ``infer`` in this process; (exit code, seconds it took)."""
    started = time.monotonic()
    code = main(["infer", url, "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress", *extra])
    return code, time.monotonic() - started


def _check_outputs(out: Path) -> dict:
    """The run's index is valid JSON and lists exactly the per-frame files on disk, each valid; returns images.json."""
    images = json.loads((out / "images.json").read_text())
    results = json.loads((out / "results_coco.json").read_text())
    written = sorted(p.name for p in out.glob("*_keypoints.json"))
    assert sorted(e["json"] for e in images.values()) == written
    for name in written:
        assert "people" in json.loads((out / name).read_text())
    assert {r["image_id"] for r in results} <= {int(i) for i in images}
    frames = [images[str(i)]["frame"] for i in range(1, len(images) + 1)]
    assert frames == sorted(set(frames))  # frame numbers only grow: the newest frame each time
    for p in (out / "images.json", out / "results_coco.json"):
        assert not stale_temp_files(p)
    return images


class SlowNetwork:
    """A predictor whose network takes ``seconds`` per frame (a big model on a small CPU)."""

    def __init__(self, predictor, seconds: float) -> None:
        self.predictor, self.seconds = predictor, seconds

    def forward(self, prepared):
        time.sleep(self.seconds)
        return self.predictor.forward(prepared)

    def __getattr__(self, name):
        return getattr(self.predictor, name)


@pytest.fixture
def slow_network(monkeypatch):
    real = live_cli.build_predictor
    monkeypatch.setattr(live_cli, "build_predictor", lambda args: SlowNetwork(real(args), 0.3))


# ------------------------------------------------------------------------------ sources
def test_stream_urls_are_live_sources_and_keep_their_double_slash():
    for url in ("rtsp://cam.local:554/h264", "http://127.0.0.1:8080/stream.mjpg", "https://x/live.m3u8", "udp://@:1234"):
        assert is_stream_url(url)
        assert live_cli.path_or_url(url) == url  # as text: Path() would fold "//" into "/"
    for path in ("clip.mp4", "/data/http/frames", "C:/videos/a.mp4", "file.mp4://"):
        assert not is_stream_url(path) and isinstance(live_cli.path_or_url(path), Path)
    source = LiveSource(url="rtsp://admin:secret@10.0.0.5/stream1")
    assert source.name == "rtsp://admin:***@10.0.0.5/stream1" and source.stem == "stream1"
    assert LiveSource(camera=0).name == "camera 0" and LiveSource(camera=0).stem == "camera0"
    with pytest.raises(ValueError, match="camera index"):
        LiveSource(camera=-1)


def test_reader_hands_out_the_newest_frame_and_counts_the_others_as_dropped():
    with MjpegServer(frames=50, fps=25, image_hw=HW) as server:
        reader = LatestFrameReader(LiveSource(url=server.url))
        reader.start()
        taken = []
        for frame in reader.frames():  # a consumer 5 times slower than the stream
            taken.append((frame.number, frame_number_of(frame.image), server.current_frame()))
            time.sleep(0.2)
    assert reader.outcome == "ended" and reader.problem is None
    assert 6 <= len(taken) <= 14 and reader.taken == len(taken)
    assert reader.dropped == reader.read - len(taken) >= 30
    for number, on_frame, on_air in taken[:-1]:
        assert on_air - 4 <= on_frame <= on_air  # the frame handed out is the one on air, not an old one
    assert taken[-1][1] == 49  # the last frame of the stream is the last one taken
    numbers = [n for n, _, _ in taken]
    assert numbers == sorted(set(numbers))


# ------------------------------------------------------------------------------ infer
def test_a_slow_model_drops_frames_and_ends_soon_after_the_stream(slow_network, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=60, fps=25, image_hw=HW) as server:  # 2.4 s
        code, took = _infer(server.url, checkpoint, out)
        ended_after = time.monotonic() - (server.started + server.duration)
    assert code == 0
    printed = capsys.readouterr().out
    assert "the stream ended" in printed
    images = _check_outputs(out)
    assert 2 <= len(images) <= 12  # 0.3 s a frame over 2.4 s (a queueing reader would do all 60, for 18 s)
    assert ended_after < 5.0  # the frame in hand at the end (a queue: 15 s more)
    dropped = int(printed.split(" dropped")[0].rsplit(", ", 1)[1])
    read = int(printed.split(" read")[0].rsplit("of ", 1)[1])
    assert dropped == read - len(images) and dropped >= 30
    median = float(printed.split("median ")[1].split(" s")[0])
    assert median < 2.5  # capture to result: about one frame's work, where a queue's would grow to 15 s


def test_infer_on_a_stream_with_track_smooth_render_writes_the_frames_in_real_time(checkpoint, tmp_path, capsys):
    """The Done-when command, small: ``infer http://127.0.0.1:PORT/stream.mjpg --checkpoint FILE --track -o DIR``."""
    out = tmp_path / "out"
    with MjpegServer(frames=75, fps=25, image_hw=HW) as server:
        code, took = _infer(server.url, checkpoint, out, "--track", "--smooth", "--render")
    assert code == 0 and took < server.duration + 8.0
    printed = capsys.readouterr().out
    assert " dropped (of " in printed and "latency from capture to result: median" in printed
    images = _check_outputs(out)
    assert len(images) >= 3
    first = images["1"]
    assert first["file"] == server.url and first["json"].startswith(f"stream_{first['frame']:012d}_")
    assert first["json"].endswith(first["capture_time"].replace("-", "").replace(":", "") + "_keypoints.json")
    people = [json.loads((out / e["json"]).read_text())["people"] for e in images.values()]
    assert all("person_id" in p for frame in people for p in frame)
    video = cv2.VideoCapture(str(out / "stream_rendered.mp4"))
    count, fps = video.get(cv2.CAP_PROP_FRAME_COUNT), video.get(cv2.CAP_PROP_FPS)
    video.release()
    # each processed frame held until the next one's capture time: the video lasts as long as the frames took
    first_t, last_t = (time.mktime(time.strptime(images[k]["capture_time"][:19], "%Y-%m-%dT%H:%M:%S"))
                       + float(images[k]["capture_time"][19:-1]) for k in ("1", str(len(images))))
    assert fps == 25 and abs(count - (round((last_t - first_t) * 25) + 1)) <= 2


def test_a_top_down_model_reads_a_stream_until_max_frames(hrnet_checkpoint, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=25 * 60, fps=25, image_hw=HW) as server:  # the tiny detector finds ~40 "people" a frame
        code, took = _infer(server.url, hrnet_checkpoint, out, "--person-detector", str(checkpoint), "--max-frames", "2",
                            "--no-flip", "--track")
    assert code == 0
    assert "--max-frames 2 reached" in capsys.readouterr().out
    assert len(_check_outputs(out)) == 2


def test_duration_ends_the_run_with_exit_0(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        code, took = _infer(server.url, checkpoint, out, "--duration", "1")
    assert code == 0 and took < 5.0
    assert "--duration 1 s reached" in capsys.readouterr().out
    assert len(_check_outputs(out)) >= 1


def test_sigterm_mid_stream_ends_with_exit_0_and_every_file_whole(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or the handler a library (Ray) set in this process
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        code, took = _infer(server.url, checkpoint, out)
        timer.join()
    assert code == 0 and took < 6.0
    assert "stopped by SIGTERM" in capsys.readouterr().out
    assert len(_check_outputs(out)) >= 1
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the process's again


# ------------------------------------------------------------------------------ lost and unreachable
def _kill_after(server: MjpegServer, seconds: float, revive_after: float | None = None) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        server.kill()
        if revive_after is not None:
            time.sleep(revive_after)
            server.revive()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_server_that_dies_mid_stream_is_reported_with_exit_1_and_what_was_processed_kept(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        _kill_after(server, 1.5)
        code, took = _infer(server.url, checkpoint, out)
    assert code == 1 and took < 5.0
    captured = capsys.readouterr()
    assert "the source was lost" in captured.out
    error = captured.err.strip().splitlines()[-1]
    assert f"lost {server.url} after" in error and "its server no longer answers" in error and "--reconnect N" in error
    assert len(_check_outputs(out)) >= 1


def test_with_reconnect_a_dead_server_is_retried_with_backoff_then_reported(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        _kill_after(server, 1.0)
        code, took = _infer(server.url, checkpoint, out, "--reconnect", "2")
    assert code == 1 and 1.0 + 0.5 + 1.0 <= took < 7.0  # waited 0.5 s, then 1 s, before giving up
    assert "2 reconnections failed" in capsys.readouterr().err
    assert len(_check_outputs(out)) >= 1


def test_with_reconnect_a_server_back_within_the_tries_is_read_on_to_the_end(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with MjpegServer(frames=100, fps=25, image_hw=HW) as server:  # 4 s
        _kill_after(server, 1.0, revive_after=0.2)
        code, took = _infer(server.url, checkpoint, out, "--reconnect", "3")
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 reconnection)" in printed and "the stream ended" in printed
    frames = [e["frame"] for e in _check_outputs(out).values()]
    assert frames[-1] > 40  # frames after the reconnection were processed (about 25 were read before it)


def test_a_live_run_follows_the_output_folder_rule_and_appends_to_the_index(checkpoint, dataset, tmp_path, capsys):
    """The folder holds a run of files: refused before the source opens; --append adds the frames of two
    live runs, each with its own rendered video, and the index lists every image of the folder."""
    out = tmp_path / "out"
    image = dataset / "images" / "000001.jpg"
    assert main(["infer", str(image), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    code, took = _infer(f"http://127.0.0.1:{_free_port()}/cam", checkpoint, out)  # nothing listens there
    assert code == 2 and took < 5.0
    assert "already holds a run (1 keypoint file, results_coco.json, images.json); add to it with --append" in \
        capsys.readouterr().err
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        for _ in range(2):
            assert _infer(server.url, checkpoint, out, "--append", "--max-frames", "2", "--render")[0] == 0
    images = json.loads((out / "images.json").read_text())
    results = json.loads((out / "results_coco.json").read_text())
    assert sorted(images, key=int) == ["1", "2", "3", "4", "5"] and images["1"]["file"] == str(image)
    assert sorted(e["json"] for e in images.values()) == sorted(p.name for p in out.glob("*_keypoints.json"))
    assert {r["image_id"] for r in results} <= {int(i) for i in images}
    assert len(list(out.glob("*_rendered.mp4"))) == 2  # the second live run's video did not replace the first's


def test_an_unreachable_port_exits_2_within_seconds_naming_it(checkpoint, tmp_path, capsys):
    url = f"http://127.0.0.1:{_free_port()}/stream.mjpg"
    code, took = _infer(url, checkpoint, tmp_path / "out")
    assert code == 2 and took < 3.0
    line = capsys.readouterr().err.strip()
    assert line == f"openpose-lite infer: error: cannot open {url}: its server does not answer (nothing listens at " \
                   "that host and port, or it is unreachable)"
    assert not (tmp_path / "out").exists()


def test_a_server_that_never_answers_exits_2_after_the_open_timeout(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(live, "OPEN_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/stream.mjpg"
        code, took = _infer(url, checkpoint, tmp_path / "out")
    assert code == 2 and took < 4.0
    assert f"cannot open {url}: the server answers but serves no video stream there within 1 s" in capsys.readouterr().err


def test_a_missing_camera_exits_2_naming_it(checkpoint, tmp_path, capsys):
    started = time.monotonic()
    code = main(["infer", "--camera", "97", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out")])
    assert code == 2 and time.monotonic() - started < 5.0
    assert "cannot open camera 97: no camera with that index answers" in capsys.readouterr().err


# ------------------------------------------------------------------------------ hostile servers
_READ_ALL = """
import json, resource, sys
import cv2  # noqa: F401 - OpenCV and its FFmpeg loaded: the start-up that growth is measured from
from openpose_lite.data.mjpeg_stream import frame_number_of
from openpose_lite.live import LatestFrameReader, LiveSource
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = LatestFrameReader(LiveSource(url=sys.argv[1]))
reader.start()
last = None
for frame in reader.frames():
    last = frame_number_of(frame.image)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start  # KiB on Linux
print(json.dumps({"outcome": reader.outcome, "skipped": reader.skipped, "last": last, "growth_mib": growth / 1024}))
"""


def _counts(summary: str) -> tuple[int, int]:
    """(frames read, frames processed) from the summary's first line."""
    return int(summary.split(" read")[0].rsplit("of ", 1)[1]), int(summary.split(" frames processed")[0])


def test_a_stream_that_stalls_mid_jpeg_then_falls_silent_is_lost_with_exit_1(checkpoint, tmp_path, capsys, monkeypatch):
    """The server cuts a frame off in its scan data and says nothing more on the open connection. FFmpeg's
    read timeout cuts the read, which hands back the half frame concealed as if whole, and the next read
    fails at once: that is silence (lost, exit 1), not the stream's end."""
    monkeypatch.setattr(live, "READ_TIMEOUT_S", 1.0)
    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=HW, faults={50: "stall"}) as server:
        code, took = _infer(server.url, checkpoint, out)
    assert code == 1 and took < 8.0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].endswith("; the source was lost")
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith(f"openpose-lite infer: error: lost {server.url} after ") and "no frame for 1 s" in error
    assert len(_check_outputs(out)) >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_stalled_read_hands_out_no_half_frame_and_with_reconnect_the_stream_is_read_on():
    """The half frame FFmpeg hands back when its timeout cuts the stalled read is not handed out; with
    a reconnection allowed, the stream is reopened and read on to its end."""
    with MjpegServer(frames=100, fps=25, image_hw=HW, faults={40: "stall"}) as server:  # 4 s
        reader = LatestFrameReader(LiveSource(url=server.url), reconnect=1, read_timeout=1.0)
        reader.start()
        numbers = [frame_number_of(frame.image) for frame in reader.frames()]  # a consumer that keeps up
    assert reader.outcome == "ended" and reader.reconnections == 1 and reader.skipped == 0
    assert 40 not in numbers and numbers[-1] == 99
    assert numbers == sorted(numbers) and max(n for n in numbers if n < 40) >= 30  # read up to the stall


@pytest.mark.parametrize("fault", ["huge", "undecodable", "no-boundary"])
def test_a_bad_frame_is_skipped_and_counted_and_the_stream_read_to_its_end(fault, checkpoint, tmp_path, capsys):
    """One frame whose header claims 30000 x 30000 pixels, one that is no image, or one part sent without
    its boundary line, amid good frames: skipped and counted, and the stream is read on to its end."""
    out = tmp_path / "out"
    with MjpegServer(frames=75, fps=25, image_hw=HW, faults={40: fault}) as server:  # 3 s
        code, took = _infer(server.url, checkpoint, out)
    assert code == 0 and took < server.duration + 8.0
    summary = capsys.readouterr().out.splitlines()[0]
    assert ", 1 bad frame skipped)" in summary and summary.endswith(", 0 failures; the stream ended")
    read, processed = _counts(summary)
    assert read >= 60  # the frames after the bad one too (ending there, about 40)
    images = _check_outputs(out)
    assert len(images) == processed and max(e["frame"] for e in images.values()) >= 55
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_frame_claiming_30000x30000_pixels_is_skipped_without_taking_its_memory():
    """The reader, in a process of its own, reads a stream with such a frame amid good ones: it reads on
    past it, and its peak memory grows by a few MiB over its start-up, not the 2.5 GiB the frame claims."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with MjpegServer(frames=100, fps=25, image_hw=HW, faults={60: "huge"}) as server:  # a late reader meets it too
        result = subprocess.run([sys.executable, "-c", _READ_ALL, server.url], env=env, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "ended" and report["skipped"] == 1 and report["last"] == 99  # read to the end
    assert report["growth_mib"] < 200  # decoded, the claimed frame alone would be 30000 * 30000 * 3 B


def test_a_closed_connection_ends_a_stream_its_server_would_serve_again(tmp_path):
    """A file of concatenated JPEGs served over HTTP (its length unknown to FFmpeg): at its end the server
    closes the connection, and the stream has ended there, although the server would serve it again
    from its start (a reader that asked for it again would read it round and round)."""
    frames = [cv2.imencode(".jpg", np.full(HW + (3,), 5 * i, np.uint8))[1].tobytes() for i in range(30)]
    (tmp_path / "clip.mjpg").write_bytes(b"".join(frames))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            reader = LatestFrameReader(LiveSource(url=f"http://127.0.0.1:{httpd.server_address[1]}/clip.mjpg"))
            reader.start()
            started = time.monotonic()
            while not reader.finished and time.monotonic() - started < 10:
                reader.take(timeout=0.1)
            reader.stop()
        finally:
            httpd.shutdown()
    assert reader.outcome == "ended" and reader.read == 30 and reader.skipped == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="a connection's state is read from /proc")
def test_connection_open_tells_a_connection_the_server_holds_from_one_it_closed():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        source = LiveSource(url=f"http://127.0.0.1:{listener.getsockname()[1]}/stream.mjpg")
        assert source.connection_open() is None  # this process holds no connection to it
        with socket.create_connection(listener.getsockname()) as client:
            served, _ = listener.accept()
            assert source.connection_open() is True
            served.close()  # the server's end closes: the client's waits for its owner (CLOSE_WAIT)
            deadline = time.monotonic() + 2.0
            while source.connection_open() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert source.connection_open() is False
            client.close()
            assert source.connection_open() is None
    assert LiveSource(camera=0).connection_open() is None
    assert LiveSource(url="udp://127.0.0.1:9").connection_open() is None


# ------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.slow
def test_ctrl_c_mid_stream_ends_with_exit_0_and_valid_json(checkpoint, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with MjpegServer(frames=25 * 120, fps=25, image_hw=HW) as server:
        proc = subprocess.Popen([sys.executable, "-m", "openpose_lite", "infer", server.url, "--checkpoint", str(checkpoint),
                                 "--track", "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 90
            while len(list(out.glob("*_keypoints.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped by Ctrl-C" in stdout
    assert len(_check_outputs(out)) >= 2


def test_show_draws_the_processed_frames_from_the_main_thread_and_q_ends_the_run(checkpoint, tmp_path, capsys,
                                                                                 monkeypatch):
    """--show's own logic, with OpenCV's GUI calls stood in for (this OpenCV may have none): the window is
    refreshed from the thread that opened it with the drawn frames, and a q ends the run like the stream's end."""
    shown: list[tuple[str, tuple]] = []
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "  GUI:                           GTK3\n")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: shown.append((threading.current_thread().name, ())))
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append((threading.current_thread().name, image.shape)))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: ord("q") if len(shown) >= 4 else -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    out = tmp_path / "out"
    with MjpegServer(frames=250, fps=25, image_hw=HW) as server:
        code, took = _infer(server.url, checkpoint, out, "--show")
    assert code == 0 and "the window was closed" in capsys.readouterr().out
    assert {name for name, _ in shown} == {threading.main_thread().name}
    assert [shape for _, shape in shown[1:]] == [HW + (3,)] * 3
    assert len(_check_outputs(out)) >= 3


# ------------------------------------------------------------------------------ refused options
@pytest.mark.parametrize("extra, message", [
    (["--show"], "--show needs OpenCV with a GUI"),
    (["--boxes", "boxes.json"], "--boxes: a box file names images by id"),
    (["--batch-size", "4"], "--batch-size 4: a live source runs one frame at a time"),
    (["--smooth"], "--smooth smooths tracked people over time; add --track"),
])
def test_live_options_that_cannot_work_are_refused_before_the_source_opens(extra, message, checkpoint, tmp_path, capsys):
    if extra == ["--show"] and "NONE" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0]:
        pytest.skip("this OpenCV has a GUI")
    url = f"http://127.0.0.1:{_free_port()}/stream.mjpg"  # nothing there: the option is refused first
    assert main(["infer", url, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out"), *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["clip.mp4", "--max-frames", "3"], "--max-frames is for cameras and streams"),
    (["clip.mp4", "--reconnect", "2"], "--reconnect is for cameras and streams"),
    (["--camera", "0", "clip.mp4"], "--camera 0 reads a camera: give no PATH with it"),
    (["rtsp://127.0.0.1:9/live", "clip.mp4"], "a live source is read alone: rtsp://127.0.0.1:9/live cannot be combined"),
    ([], "give the images, videos or folders to read"),
])
def test_live_options_on_files_are_refused(argv, message, checkpoint, tmp_path, capsys):
    assert main(["infer", *argv, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_newest_first_takes_an_item_only_when_the_network_is_free():
    from openpose_lite.inference.pipeline import run_newest_first

    events: list[str] = []

    class Net:
        def prepare(self, images, ids):
            return images

        def forward(self, prepared):
            events.append("forward")
            time.sleep(0.02)
            return prepared

        def finish(self, prepared, outputs):
            time.sleep(0.05)  # slower than the network: the next item still waits for no one
            return [np.zeros(0)] * len(prepared)

    def items():
        for n in range(5):
            events.append("take")
            yield n

    handled: list[int] = []
    run_newest_first(Net(), items(), lambda n: np.zeros((4, 4, 3), np.uint8), lambda n, poses: handled.append(n))
    assert handled == list(range(5))
    assert events == ["take", "forward"] * 5  # never two items taken ahead of the network
