"""Micro-batching: images of concurrent requests gathered into one network call, run on a worker thread
outside the event loop.

Images of one size only share a batch: a narrower image padded to a wider one's width would see the
padding at its right edge, and its people could differ from what the model finds in it alone. An image
whose request timed out or went away before the worker reached it is dropped unrun.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openpose_lite.structures import Poses

__all__ = ["BatcherClosed", "MicroBatcher", "QueueFull"]

log = logging.getLogger(__name__)

PredictBatch = Callable[[Sequence[np.ndarray]], Sequence[Poses]]


class QueueFull(RuntimeError):
    """The queue holds as many images as it may; ``retry_after`` (whole seconds) estimates when it has room."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"the server is busy: {waiting} images wait for the network; retry in {retry_after} s")
        self.retry_after = retry_after


class BatcherClosed(RuntimeError):
    """The server is shutting down."""


@dataclass(eq=False)
class _Item:
    image: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)
    abandoned: bool = False  # its request stopped waiting: the worker skips it

    def resolve(self, outcome: Poses | BaseException) -> None:
        def set_outcome() -> None:
            if self.future.done():  # timed out or cancelled meanwhile
                return
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(set_outcome)
        except RuntimeError:  # the loop is closed: nobody waits for it
            pass


class MicroBatcher:
    """Runs ``predict_batch`` (images (H, W, 3) uint8 BGR -> one Poses each) on batches of concurrent requests:
    the oldest image waits ``wait_s`` for others to join, up to ``limit`` in one call; more than ``bound``
    waiting are refused with :class:`QueueFull`. The worker thread starts with the first image.
    """

    def __init__(self, predict_batch: PredictBatch, wait_s: float = 0.005, limit: int = 8, bound: int = 32) -> None:
        self._predict_batch = predict_batch
        self.wait_s, self.limit, self.bound = float(wait_s), int(limit), int(bound)
        self._pending: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._seconds_per_batch = 0.0  # running mean, for Retry-After
        self.stats: dict[str, int] = {"images": 0, "batches": 0, "largest_batch": 0, "refused": 0, "abandoned": 0}

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def predict(self, image: np.ndarray, timeout: float) -> Poses:
        """The people in ``image``, predicted in a batch with other waiting images of its size. Raises
        :class:`QueueFull` when the queue is full, :class:`BatcherClosed` after :meth:`close`, ``TimeoutError``
        after ``timeout`` seconds, and what ``predict_batch`` raised for this image."""
        loop = asyncio.get_running_loop()
        item = _Item(image, loop.create_future(), loop)
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if len(self._pending) >= self.bound:
                self.stats["refused"] += 1
                # Retry-After: the batches ahead at the mean time of a batch, at least 1 s.
                batches = math.ceil(len(self._pending) / self.limit)
                raise QueueFull(len(self._pending), max(1, math.ceil(batches * self._seconds_per_batch)))
            self._pending.append(item)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="openpose-lite-batcher", daemon=True)
                self._worker.start()
            self._cond.notify()
        try:
            return await asyncio.wait_for(item.future, timeout)
        except BaseException:  # timed out, or the request went away: the worker need not run it
            item.abandoned = True
            raise

    def close(self) -> None:
        """Stop the worker; images still waiting get :class:`BatcherClosed`."""
        with self._cond:
            self._closed = True
            left, self._pending = list(self._pending), deque()
            self._cond.notify_all()
        for item in left:
            item.resolve(BatcherClosed("the server is shutting down"))
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=60)

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if batch:
                self._run_batch(batch)

    def _take(self) -> list[_Item] | None:
        """The next batch: the oldest image and those of its size, once ``limit`` are there or its wait is over."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._pending[0]
            while True:
                same = [it for it in self._pending if it.image.shape == first.image.shape][: self.limit]
                left = first.arrived + self.wait_s - time.monotonic()
                if len(same) >= self.limit or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            for it in same:
                self._pending.remove(it)
        live = [it for it in same if not it.abandoned]
        self.stats["abandoned"] += len(same) - len(live)
        return live

    def _run_batch(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        outcomes = self._outcomes([it.image for it in batch])
        seconds = time.perf_counter() - start
        self._seconds_per_batch = seconds if not self.stats["batches"] else 0.9 * self._seconds_per_batch + 0.1 * seconds
        self.stats["batches"] += 1
        self.stats["images"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        for item, outcome in zip(batch, outcomes):
            item.resolve(outcome)

    def _outcomes(self, images: list[np.ndarray]) -> list[Any]:
        """One Poses (or the exception raised for it) per image; one failing image fails only itself."""
        try:
            results = list(self._predict_batch(images))
            if len(results) != len(images):
                raise RuntimeError(f"predict_batch returned {len(results)} results for {len(images)} images")
            return results
        except Exception as exc:  # noqa: BLE001 - whatever an image does, the worker goes on
            if len(images) == 1:
                log.debug("prediction failed: %s", exc, exc_info=not isinstance(exc, ValueError))
                return [exc]
        return [self._outcomes([image])[0] for image in images]
