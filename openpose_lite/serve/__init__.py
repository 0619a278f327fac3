"""``openpose-lite serve``: pose estimation as an HTTP service, with a page that draws the people.

:func:`create_app` (Starlette) needs the ``serve`` extra and is imported when first named, so the options
and :class:`MicroBatcher` import without it.
"""

from typing import Any

from openpose_lite.serve.batcher import BatcherClosed, MicroBatcher, QueueFull
from openpose_lite.serve.options import ServeOptions, is_loopback

__all__ = ["TOKEN_COOKIE", "BatcherClosed", "MicroBatcher", "QueueFull", "ServeOptions", "create_app", "is_loopback",
           "uvicorn_config"]


def __getattr__(name: str) -> Any:
    if name in ("TOKEN_COOKIE", "create_app", "uvicorn_config"):
        from openpose_lite.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'openpose_lite.serve' has no attribute {name!r}")
