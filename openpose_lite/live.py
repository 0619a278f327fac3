"""Live sources: cameras and network streams, read newest frame first.

A live source's frames come at the camera's rate whether or not anyone keeps up, so
:class:`LatestFrameReader` reads it in a thread of its own and keeps only the newest frame; the
frames the consumer never took are counted as dropped. A source (:class:`LiveSource`) is a camera
index or a stream URL that OpenCV's FFmpeg backend opens, with open and read timeouts.

Bad frames are skipped and counted; a source *ends* or is *lost* (then reopened up to ``reconnect``
times, with doubling waits) as docs/cli.md#cameras-and-streams describes. A capture that keeps failing
either lost its connection or its demuxer lost its place for good (a multipart part without its
boundary line); OpenCV reports both alike, so the connection tells them apart
(:meth:`LiveSource.connection_open`), and whether the server still answers tells an end from a loss.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from openpose_lite.io import plural

__all__ = ["LiveFrame", "LatestFrameReader", "LiveSource", "SourceUnavailable", "STREAM_SCHEMES", "is_stream_url"]

logger = logging.getLogger(__name__)

# URL schemes read as live streams through FFmpeg (its network protocols).
STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "udp", "rtp", "srt", "tcp", "mmsh", "mmst")
# Schemes over TCP, and the port each uses when the URL names none: whether the server still
# answers tells a stream that ended from one that was lost.
_TCP_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443, "rtmpt": 80,
              "tcp": None, "mmsh": 80, "mmst": 1755}

OPEN_TIMEOUT_S = 5.0  # FFmpeg's open (connect, probe); OpenCV's default is 30 s
READ_TIMEOUT_S = 5.0  # a read that waits longer has stalled; OpenCV's default is 30 s
_PROBE_TIMEOUT_S = 2.0
_RETRIES = 8  # failed reads in a row retried on one capture before it counts as one that reads nothing more
_POLL_S = 0.05  # how often a waiting consumer looks at the stop request


def is_stream_url(text: str) -> bool:
    """Whether ``text`` is a URL of a live stream (``scheme://...`` with one of :data:`STREAM_SCHEMES`)."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return bool(match) and match.group(1).lower() in STREAM_SCHEMES


class SourceUnavailable(Exception):
    """A live source that cannot be opened: the message names it and says why. ``answers``: whether its
    server accepted a TCP connection meanwhile (None: not asked, for a camera or UDP)."""

    def __init__(self, message: str, answers: bool | None = None) -> None:
        super().__init__(message)
        self.answers = answers


def _ip(text: str) -> str:
    """An IP address in one spelling (an IPv4 address mapped into IPv6 as IPv4, no zone)."""
    ip = ipaddress.ip_address(text.split("%")[0])
    return str(ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip)


def _own_sockets() -> set[str]:
    """The inode numbers of this process's sockets (Linux's ``/proc/self/fd``)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since it was listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _proc_address(text: str) -> tuple[str, int]:
    """An address of ``/proc/net/tcp`` or ``tcp6`` (``0100007F:1F90``: the IP as 32-bit words in host
    byte order, the port in hex) as (IP, port)."""
    ip_hex, port_hex = text.split(":")
    words = [bytes.fromhex(ip_hex[i:i + 8]) for i in range(0, len(ip_hex), 8)]
    if sys.byteorder == "little":
        words = [word[::-1] for word in words]
    return _ip(str(ipaddress.ip_address(b"".join(words)))), int(port_hex, 16)


@dataclass(frozen=True)
class LiveSource:
    """A camera (``camera``: its index) or a stream (``url``)."""

    url: str | None = None
    camera: int | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.camera is None):
            raise ValueError("LiveSource: give a url or a camera index, not both or neither")
        if self.url is not None and not is_stream_url(self.url):
            raise ValueError(f"LiveSource: {self.url!r} is not a stream URL ({', '.join(STREAM_SCHEMES)})")
        if self.camera is not None and (isinstance(self.camera, bool) or int(self.camera) != self.camera
                                        or self.camera < 0):
            raise ValueError(f"LiveSource: a camera index is an integer >= 0, got {self.camera!r}")

    @property
    def name(self) -> str:
        """``camera 0``, or the URL with any password masked (it goes into messages and files)."""
        if self.camera is not None:
            return f"camera {self.camera}"
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def stem(self) -> str:
        """A file-name stem for its outputs: ``camera0``, or the URL path's last name (else its host)."""
        if self.camera is not None:
            return f"camera{self.camera}"
        parts = urlsplit(self.url)
        last = parts.path.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", last or parts.hostname or "stream").strip("-")
        return stem or "stream"

    def open(self, open_timeout: float = OPEN_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S):
        """The opened ``cv2.VideoCapture``; raises :class:`SourceUnavailable` naming the source and the reason."""
        import cv2

        if self.camera is not None:
            capture = cv2.VideoCapture(int(self.camera))
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000)]
            capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if capture.isOpened():
            return capture
        capture.release()
        if self.camera is not None:
            found = sorted(glob.glob("/dev/video*"))
            where = f"this machine has {' '.join(found)}" if found else "this machine shows no /dev/video* device"
            raise SourceUnavailable(f"cannot open {self.name}: no camera with that index answers ({where})")
        answers = self.server_answers()
        within = f"within {open_timeout:g} s"
        why = ("its server does not answer (nothing listens at that host and port, or it is unreachable)"
               if answers is False else f"the server answers but serves no video stream there {within} (check "
               "the path, the credentials)" if answers else f"no video stream arrived {within}")
        raise SourceUnavailable(f"cannot open {self.name}: {why}", answers)

    def _server(self) -> tuple[str, int] | None:
        """The host and port of a stream over TCP; None for a camera or UDP; ValueError for a port that is no number."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        port = parts.port or _TCP_PORTS.get(scheme)
        if scheme not in _TCP_PORTS or port is None or not parts.hostname:
            return None
        return parts.hostname, port

    def server_answers(self, timeout: float = _PROBE_TIMEOUT_S) -> bool | None:
        """Whether the stream's server accepts a TCP connection; None where that cannot be asked (a camera, UDP)."""
        try:
            server = self._server()
        except ValueError:  # a port that is no number
            return False
        if server is None:
            return None
        try:
            with socket.create_connection(server, timeout=timeout):
                return True
        except OSError:
            return False

    def connection_open(self) -> bool | None:
        """Whether this process holds a TCP connection to the stream's server (FFmpeg's) that the server
        has not closed; None where that cannot be seen (a camera, UDP, a proxy, no ``/proc/self/net/tcp``)."""
        try:
            server = self._server()
            if server is None or not os.path.exists("/proc/self/net/tcp"):
                return None
            wanted = {(_ip(info[4][0]), server[1]) for info in socket.getaddrinfo(*server, type=socket.SOCK_STREAM)}
            mine = _own_sockets()
            states = set()
            for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
                if not os.path.exists(table):  # a system without IPv6
                    continue
                with open(table) as lines:
                    next(lines)  # the column names
                    for line in lines:
                        # sl local_address rem_address st ... inode: addresses as hex IP words in host order
                        fields = line.split()
                        if fields[9] in mine and _proc_address(fields[2]) in wanted:
                            states.add(fields[3])
        except (OSError, ValueError, IndexError, StopIteration):
            return None
        if not states:
            return None
        return "01" in states  # TCP_ESTABLISHED; CLOSE_WAIT (08) and the others: closed by the server, or closing


@dataclass
class LiveFrame:
    """A frame of a live source: its number (in the source's order, dropped ones counted), pixels
    (H, W, 3 BGR uint8) and capture time by ``time.time()`` (for names) and ``time.monotonic()``."""

    number: int
    image: np.ndarray
    wall_time: float
    time: float


class LatestFrameReader:
    """Reads a :class:`LiveSource` in a thread and keeps only its newest frame.

    ``open()`` (raises :class:`SourceUnavailable`), ``start()``, :meth:`take` or :meth:`frames`, ``stop()``.
    Counts: ``read``, ``taken``, ``skipped`` (bad frames). ``outcome`` once finished: ``"ended"``,
    ``"lost"`` (``problem`` says why) or ``"stopped"``.
    """

    def __init__(self, source: LiveSource, reconnect: int = 0, open_timeout: float = OPEN_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S, backoff: float = 0.5, max_backoff: float = 8.0) -> None:
        if reconnect < 0:
            raise ValueError(f"LatestFrameReader: reconnect must be >= 0, got {reconnect}")
        self.source, self.reconnect = source, int(reconnect)
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.read = self.taken = self.reconnections = self.skipped = 0
        self.outcome: str | None = None
        self.problem: str | None = None
        self.fps = 0.0  # the rate the source announces (0.0: unknown)
        self._capture = None
        self._finite = False
        self._spent = 0  # reconnection tries spent since the last frame read
        self._failed = 0  # reads failed in a row on this capture
        self._delivered = False  # whether this capture has delivered a frame
        self._latest: LiveFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.finished = False  # the reader stopped reading (the source ended or was lost, or stop())
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        """Frames read but never handed out (the newest one kept at a stop included)."""
        return self.read - self.taken

    def open(self) -> None:
        import cv2

        self._capture = self.source.open(self.open_timeout, self.read_timeout)
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0 < fps < 1000 else 0.0
        self._finite = self.source.url is not None and float(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) > 0

    def start(self) -> None:
        """Start reading (opening the source first if need be)."""
        if self._capture is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="openpose-lite-live-reader", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 1.0) -> None:
        """Stop reading; waits up to ``wait`` s for the thread (a read in progress ends by its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
        self._finish("stopped")  # a read still in progress ends by its timeout; nothing more is handed out

    def take(self, timeout: float | None = None) -> LiveFrame | None:
        """The newest frame not handed out yet, waiting for one; None when the reader finished or stopped,
        or after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self.finished and not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                self._cond.wait(_POLL_S)  # short waits: a signal handler in this thread runs in between
            if self._stop.is_set():
                return None
            frame, self._latest = self._latest, None
            self.taken += frame is not None
            return frame

    def frames(self) -> Iterator[LiveFrame]:
        """The newest frames, one at a time as the caller asks for them, until the reader finishes or stops."""
        while (frame := self.take()) is not None:
            yield frame

    # ------------------------------------------------------------------ the reader thread
    def _publish(self, image: np.ndarray) -> None:
        frame = LiveFrame(self.read, image, time.time(), time.monotonic())
        self._spent = 0  # the source delivers again: a later outage gets every try
        if self._failed:
            logger.info("%s: %s skipped", self.source.name, plural(self._failed, "bad frame"))
        self.skipped += self._failed  # the capture read past them: each was a frame it could not decode
        self._failed, self._delivered = 0, True
        with self._cond:
            self._latest = frame  # the one it replaces, never taken, is dropped
            self.read += 1
            self._cond.notify_all()

    def _finish(self, outcome: str, problem: str | None = None) -> None:
        with self._cond:
            if self.outcome is None:
                self.outcome, self.problem = outcome, problem
            self.finished = True
            self._cond.notify_all()

    def _run(self) -> None:
        outcome, problem = "stopped", None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                ok, image = self._capture.read()
                if self._stop.is_set():
                    break
                if time.monotonic() - started >= self.read_timeout:
                    # FFmpeg's interrupt cut the read: silence. A JPEG cut in its scan data comes back
                    # concealed (grey below the cut) as if whole; it is no frame, and the capture is spent.
                    ended = self._recover(stalled=True)
                elif ok and image is not None:
                    self._publish(image)
                    continue
                elif self._failed < _RETRIES:
                    self._failed += 1  # a bad frame, or a capture that reads nothing more: read again
                    continue
                else:
                    ended = self._recover(stalled=False)
                if ended is not None:
                    outcome, problem = ended
                    break
        except Exception as exc:  # noqa: BLE001 - an OpenCV error ends the source; the consumer reports it
            outcome, problem = "lost", f"reading {self.source.name} failed: {exc}"
        finally:
            if self._capture is not None:
                self._capture.release()
            self._finish(outcome, problem)

    def _recover(self, stalled: bool) -> tuple[str, str | None] | None:
        """After a read that timed out (``stalled``) or a capture that reads nothing more: None when
        a new capture reads on, else ``("ended", None)``, ``("lost", why)`` or ``("stopped", None)``."""
        alive = None if stalled or self._finite else self.source.connection_open()  # before release closes it
        self._capture.release()
        delivered, self._delivered, self._failed = self._delivered, False, 0
        if self._finite and not stalled:
            return "ended", None
        if alive and delivered:
            # the server still sends, but the capture reads nothing more: its demuxer lost its place
            # (a part without its boundary line). The stream goes on: ask for it again.
            try:
                self._capture = self.source.open(self.open_timeout, self.read_timeout)
            except SourceUnavailable as exc:  # its server was asked: it is not asked twice
                if exc.answers:
                    return "ended", None  # the server serves the stream no more
                answers = exc.answers
            else:
                self.skipped += 1
                logger.info("%s: read again past bad data (1 bad frame skipped)", self.source.name)
                return None
        else:
            answers = self.source.server_answers()
        if answers and not stalled and not alive and not self.reconnect:
            return "ended", None  # the server closed the stream and is still there: the stream's end
        if stalled:
            why = f"no frame for {self.read_timeout:g} s"
        elif answers is False:
            why = "its server no longer answers"
        elif alive:
            why = "it sends nothing that decodes"
        else:
            why = "it stopped delivering frames"
        while self._spent < self.reconnect:
            # a stream that reopens but delivers nothing goes on with the same outage's tries
            delay = min(self.backoff * 2 ** self._spent, self.max_backoff)
            self._spent += 1
            attempt = self._spent
            if self._stop.wait(delay):
                return "stopped", None
            try:
                self._capture = self.source.open(self.open_timeout, self.read_timeout)
            except SourceUnavailable as exc:
                if not stalled and exc.answers:
                    return "ended", None  # up again, but the stream is over
                logger.info("%s: reconnection %d of %d failed", self.source.name, attempt, self.reconnect)
                continue
            self.reconnections += 1
            logger.info("%s: reconnected (try %d of %d)", self.source.name, attempt, self.reconnect)
            return None
        tries = f"; {plural(self.reconnect, 'reconnection')} failed" if self.reconnect else ""
        return "lost", f"lost {self.source.name} after {self.read} frames: {why}{tries}"
