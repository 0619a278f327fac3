"""Generated frames served as a live MJPEG stream on loopback: what the live-source tests and benchmark read.

:class:`MjpegServer` serves ``http://127.0.0.1:PORT/stream.mjpg`` as IP cameras do (``multipart/x-mixed-replace``
of JPEG parts) as a broadcast: frame i goes out at ``start + i / fps`` to every client connected then; a late or
slow client joins at the current frame. After the last frame the stream closes and later requests get 404.
:meth:`MjpegServer.kill` closes everything at once (a server dying mid-stream); :meth:`MjpegServer.revive` serves
again on the same port and clock.

``faults`` maps frame numbers to what a client gets instead (:data:`FAULTS`), once, to the first client sent
that frame or a later one: ``"stall"`` (cut in the scan data, then silence until kill, a minute at most),
``"huge"`` (a header claiming :data:`HUGE_SIDE` px each side), ``"undecodable"`` bytes, or ``"no-boundary"``.
Each frame carries its number in black and white blocks along its top (:func:`frame_number_of`).
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["FAULTS", "HUGE_SIDE", "MjpegServer", "frame_number_of"]

BOUNDARY = "frame"
FAULTS = ("stall", "huge", "undecodable", "no-boundary")
HUGE_SIDE = 30000  # px: what a "huge" frame's header claims, each side (9e8 pixels, no decoder takes it)
_BITS = 16  # frame numbers up to 65535
_STRIP_H = 8  # px
_STALL_LIMIT_S = 60.0  # a stalled client's connection is held open at most this long (or until kill())


def _draw_number(image: np.ndarray, number: int) -> None:
    """Blocks along the top rows: white for a 1 bit, black for a 0 (most significant first)."""
    w = image.shape[1] // _BITS
    for bit in range(_BITS):
        on = (number >> (_BITS - 1 - bit)) & 1
        image[:_STRIP_H, bit * w:(bit + 1) * w] = 255 if on else 0


def frame_number_of(image: np.ndarray) -> int:
    """The number :class:`MjpegServer` drew on a frame (read back through JPEG's losses)."""
    w = image.shape[1] // _BITS
    number = 0
    for bit in range(_BITS):
        block = image[1:_STRIP_H - 1, bit * w + 1:(bit + 1) * w - 1]
        number = (number << 1) | int(block.mean() > 127)
    return number


def _claim_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its start-of-frame header claiming ``width`` x ``height`` (the scan data unchanged)."""
    data = bytearray(jpeg)
    at = 2  # after SOI
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn; C4 DHT, C8 JPG, CC DAC are not
            data[at + 5:at + 7] = height.to_bytes(2, "big")
            data[at + 7:at + 9] = width.to_bytes(2, "big")
            return bytes(data)
        at += 2 + length
    raise ValueError("MjpegServer: no start-of-frame header in the encoded frame")


def _part(data: bytes, boundary: bool = True) -> bytes:
    """One part of the multipart stream: boundary line, headers, the JPEG."""
    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
    return (f"--{BOUNDARY}\r\n".encode() if boundary else b"") + head + data + b"\r\n"


def _default_frame(index: int, image_hw: tuple[int, int]) -> np.ndarray:
    """A moving grey gradient: every frame differs."""
    h, w = image_hw
    x = (np.arange(w)[None, :] + 4 * index) % 256
    grey = np.broadcast_to(x, (h, w)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


class MjpegServer:
    """A live MJPEG broadcast of ``frames`` frames at ``fps`` on 127.0.0.1 (see the module docstring).

    ``render(i)`` gives frame i (H, W, 3 BGR uint8; default: a moving gradient of ``image_hw``).
    Use it as a context manager, or ``start()`` and ``kill()``.
    """

    host = "127.0.0.1"

    def __init__(self, frames: int, fps: float = 25.0, image_hw: tuple[int, int] = (120, 160),
                 render: Callable[[int], np.ndarray] | None = None, faults: dict[int, str] | None = None) -> None:
        if frames < 1 or fps <= 0:
            raise ValueError(f"MjpegServer: frames >= 1 and fps > 0, got {frames}, {fps}")
        faults = dict(faults or {})
        for number, fault in faults.items():
            if fault not in FAULTS or not 0 <= number < frames:
                raise ValueError(f"MjpegServer: faults map frame numbers in [0, {frames}) to one of {FAULTS}, "
                                 f"got {number}: {fault!r}")
        self._faults_left = faults
        self.frames, self.fps, self.port = int(frames), float(fps), 0
        self.render = render or (lambda i: _default_frame(i, image_hw))
        self.started: float | None = None
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._killed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/stream.mjpg"

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def current_frame(self) -> int:
        """The frame on air now (``frames`` once the broadcast is over)."""
        if self.started is None:
            return 0
        return min(self.frames, max(0, int((time.monotonic() - self.started) * self.fps)))

    def encode(self, index: int) -> bytes:
        image = np.ascontiguousarray(self.render(index)).copy()
        _draw_number(image, index)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise ValueError(f"MjpegServer: cannot encode frame {index}")
        return data.tobytes()

    # ------------------------------------------------------------------ serving
    def revive(self) -> None:
        """Serve again on the same port (or, first, on a free one); the broadcast goes on at the frame now on air."""
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/stream.mjpg" or server.current_frame() >= server.frames:
                    self.send_error(404, "no stream here" if self.path != "/stream.mjpg" else "the broadcast is over")
                    return
                with server._lock:
                    server._connections.add(self.connection)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    server._stream_to(self.wfile)
                except OSError:
                    pass  # the client went away, or the server was killed
                finally:
                    with server._lock:
                        server._connections.discard(self.connection)

            def log_message(self, *args) -> None:
                pass

        self._killed.clear()
        self._httpd = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name="mjpeg-server").start()

    def _stream_to(self, out) -> None:
        index = self.current_frame()
        while index < self.frames:
            wait = self.started + index / self.fps - time.monotonic()
            if self._killed.wait(max(0.0, wait)):
                return
            fault = self._take_fault(index)
            data = self.encode(index)
            if fault == "stall":  # cut in the JPEG's scan data, then silence on an open connection
                part = _part(data)
                out.write(part[:len(part) - len(data) // 4 - 2])
                out.flush()
                self._killed.wait(_STALL_LIMIT_S)
                return
            if fault == "huge":
                data = _claim_size(data, HUGE_SIDE, HUGE_SIDE)
            elif fault == "undecodable":
                data = bytes(range(256)) * (1 + len(data) // 256)  # no JPEG markers in it
            out.write(_part(data, boundary=fault != "no-boundary"))
            out.flush()
            index = max(index + 1, self.current_frame())  # a slow reader skips to the frame on air
        out.write(f"--{BOUNDARY}--\r\n".encode())
        out.flush()

    def _take_fault(self, index: int) -> str | None:
        """The first fault not yet served at frame ``index`` or before, now served; None if there is none."""
        with self._lock:
            due = [n for n in self._faults_left if n <= index]
            return self._faults_left.pop(min(due)) if due else None

    def start(self) -> "MjpegServer":
        """Listen, and start the broadcast's clock."""
        self.revive()
        self.started = time.monotonic()
        return self

    def kill(self) -> None:
        """Die mid-stream: the listening socket and every open connection close at once."""
        if self._httpd is not None:  # first the listener: a client finds nobody there when its stream breaks
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()
        self._killed.set()

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
