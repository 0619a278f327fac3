"""What a pose server allows: where it listens, who may call it, and how much any one client can ask of it."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import typing

from openpose_lite.images import check_max_pixels
from openpose_lite.params import Params

__all__ = ["ServeOptions", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


@dataclasses.dataclass(frozen=True)
class ServeOptions(Params):
    """The settings of :func:`openpose_lite.serve.create_app` and of the server it runs in.

    ``host``/``port``: where to listen (a host other than a loopback address needs a ``token``);
    ``token``: when set, every request must carry it (``Authorization: Bearer``, ``?token=`` or
    the page's cookie). Batching: a request waits at most ``batch_wait_ms`` for others of the same
    image size to join it, up to ``batch_limit`` images in one network call (None: 8 on a CUDA
    device, 1 on the CPU, where one image already keeps every core busy and larger batches ran
    slower: docs/benchmarks.md); at most ``queue_bound`` images wait for the network, more are
    answered 503 with ``Retry-After``.
    Bounds on one request: ``max_body_bytes`` of body (or WebSocket message),
    ``max_image_pixels`` (width x height, read from the image header before decoding), and
    ``request_timeout_s`` from its first byte to its answer.
    """

    _section: typing.ClassVar[str] = "serve"

    host: str = "127.0.0.1"
    port: int = 8000
    token: typing.Optional[str] = None
    batch_wait_ms: float = 5.0
    batch_limit: typing.Optional[int] = None
    queue_bound: int = 32
    max_body_bytes: int = 32 << 20
    max_image_pixels: int = 1 << 24
    request_timeout_s: float = 30.0

    def _check(self) -> None:
        self._require(0 <= self.port <= 65535, "port", "a port number in 0..65535 (0: any free port)")
        self._require(self.token is None or len(self.token) >= 8, "token", "at least 8 characters")
        self._require(self.token is not None or is_loopback(self.host), "host",
                      "a loopback address (127.0.0.1, ::1, localhost) unless a token is set: any other host "
                      "accepts connections from other machines")
        self._require(0 <= self.batch_wait_ms <= 1000, "batch_wait_ms", "milliseconds in [0, 1000]")
        self._require(self.batch_limit is None or 1 <= self.batch_limit <= 256, "batch_limit",
                      "an integer in 1..256 (or None: by device)")
        self._require(self.queue_bound >= 1, "queue_bound", "an integer >= 1")
        self._require(self.max_body_bytes >= 1024, "max_body_bytes", "at least 1024 bytes")
        check_max_pixels(self.max_image_pixels, f"{self._section}.max_image_pixels")
        self._require(math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0, "request_timeout_s",
                      "a positive number of seconds")
