"""What a pose server allows: where it listens, who may call it, and how much any one client can ask of it."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import typing

from openpose_lite.images import check_max_pixels
from openpose_lite.params import CommandLineOptions, Params, option

__all__ = ["TOKEN_ENV", "ServeOptions", "is_loopback"]

TOKEN_ENV = "OPENPOSE_LITE_TOKEN"  # the command line's default token


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


@dataclasses.dataclass(frozen=True)
class ServeOptions(Params, CommandLineOptions):
    """The settings of :func:`openpose_lite.serve.create_app` and of the server it runs in; the ``option``
    fields are ``openpose-lite serve``'s options. ``batch_limit``: the most images in one network call
    (``--batch-size``; None: 8 on a CUDA device, 1 on the CPU, where one image already keeps every core
    busy: docs/benchmarks.md). ``max_body_bytes``: the largest body or WebSocket message (``--max-body-mb``).
    """

    _section: typing.ClassVar[str] = "serve"

    host: str = option("127.0.0.1", "address to listen on; the default reaches this machine only")
    port: int = option(8000, "port to listen on (0: a free one)")
    token: typing.Optional[str] = option(
        None, "a secret every request must carry (Authorization: Bearer TOKEN, or ?token=TOKEN for the page); "
              f"required with a --host other machines reach (default: ${TOKEN_ENV}, which other users cannot "
              "read from the process list)")
    batch_wait_ms: float = option(5.0, "how long a request waits for others to share its network batch", metavar="MS")
    batch_limit: typing.Optional[int] = None
    queue_bound: int = option(32, "images waiting for the network at most; more are answered 503 with Retry-After",
                              flag="--queue", metavar="N")
    max_body_bytes: int = 32 << 20
    max_image_pixels: int = option(1 << 24, "refuse an image of more than N pixels (width x height; 2^24: e.g. "
                                            "4096 x 4096), read from its header before it is decoded", metavar="N")
    request_timeout_s: float = option(30.0, "seconds a request may take from its first byte to its answer",
                                      flag="--timeout", metavar="S")

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
        check_max_pixels(self.max_image_pixels, self._name("max_image_pixels"))
        self._require(math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0, "request_timeout_s",
                      "a positive number of seconds")
