"""Overlapped inference over a stream of images: reading and preparing the next batch, and
decoding and handling the last one, run while the network works on the current one.

Both predictors split a call into three steps: ``prepare(images, ids)`` (host: read-side work,
letterbox or crops, normalisation), ``forward(prepared)`` (the network) and
``finish(prepared, outputs)`` (host: averaging, decoding). :func:`run_pipelined` runs them in
three threads joined by bounded queues:

* a loader thread takes items from the stream, loads their images, groups them into batches
  and prepares them (at most ``prefetch`` batches ahead);
* the calling thread runs the network on one batch after another (torch releases the GIL, so
  the other two threads run meanwhile; on a GPU the host work then hides behind it);
* a finisher thread decodes each batch and hands every item's result to ``handle`` in stream
  order, so outputs are written in order while the next batch is on the network.

A live source wants the opposite of read-ahead: the newest frame, taken when the network is
free for it. :func:`run_newest_first` takes the next item only then, in the calling thread,
prepares it and runs the network on it, while a finisher thread decodes and handles the one
before; nothing waits in a queue, so no frame grows old there.

An item whose image cannot be loaded, or that the predictor refuses (``input_problem``), is
handed to ``handle`` with the reason instead of people; a batch that fails in any step is run
again image by image, so one bad image costs only itself. Shape legend: B batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from openpose_lite.structures import Poses

__all__ = ["Outcome", "run_newest_first", "run_pipelined", "run_sequential"]

T = TypeVar("T")
# What to run an item with: its image, or the reason it has none (an unreadable file).
Load = Callable[[T], "np.ndarray | str"]
# handle(item, people or the reason the item failed), called in stream order.
Handle = Callable[[T, "Poses | str"], None]

_DONE = object()
# What a failing step may raise for one image (a degenerate image, a model that refuses it).
_RECOVERABLE = (ValueError, RuntimeError, MemoryError)


@dataclass
class Outcome(Generic[T]):
    """One item's result: its people, or why it has none."""

    item: T
    poses: Poses | None = None
    reason: str | None = None


@dataclass
class _Batch:
    items: list
    images: list
    ids: list
    outcomes: list  # Outcome per item; those still None run through the predictor
    prepared: Any = None
    outputs: Any = None
    error: BaseException | None = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": ", 1)[1] if text.startswith("images[") and ": " in text else text


def _batches(items: Iterable[T], load: Load, image_id: Callable[[T], int | None], batch_size: int,
             predictor: Any) -> Iterator[_Batch]:
    """The stream cut into batches; items without an image, or refused by the predictor, get their outcome now."""
    problem_of = getattr(predictor, "input_problem", None)
    batch = _Batch([], [], [], [])
    for item in items:
        image = load(item)
        outcome: Outcome | None = None
        if isinstance(image, str):
            outcome = Outcome(item, reason=image)
        elif problem_of is not None and (problem := problem_of(image.shape[:2])) is not None:
            outcome = Outcome(item, reason=problem)
        batch.items.append(item)
        batch.images.append(image)
        batch.ids.append(image_id(item))
        batch.outcomes.append(outcome)
        if len(batch.items) == batch_size:
            yield batch
            batch = _Batch([], [], [], [])
    if batch.items:
        yield batch


def _todo(batch: _Batch) -> list[int]:
    return [i for i, outcome in enumerate(batch.outcomes) if outcome is None]


def _prepare(predictor: Any, batch: _Batch) -> None:
    todo = _todo(batch)
    if todo:
        try:
            batch.prepared = predictor.prepare([batch.images[i] for i in todo], [batch.ids[i] for i in todo])
        except _RECOVERABLE as exc:
            batch.error = exc


def _forward(predictor: Any, batch: _Batch) -> None:
    if batch.prepared is not None and batch.error is None:
        try:
            batch.outputs = predictor.forward(batch.prepared)
        except _RECOVERABLE as exc:
            batch.error = exc


def _finish(predictor: Any, batch: _Batch) -> list[Outcome]:
    todo = _todo(batch)
    if todo and batch.error is None:
        try:
            for i, poses in zip(todo, predictor.finish(batch.prepared, batch.outputs)):
                batch.outcomes[i] = Outcome(batch.items[i], poses=poses)
        except _RECOVERABLE as exc:
            batch.error = exc
    if batch.error is not None:  # run the batch again image by image: one bad image costs only itself
        for i in _todo(batch):
            try:
                poses = predictor.predict_batch([batch.images[i]], [batch.ids[i]])[0]
                batch.outcomes[i] = Outcome(batch.items[i], poses=poses)
            except _RECOVERABLE as exc:
                batch.outcomes[i] = Outcome(batch.items[i], reason=_one_line(exc))
    return batch.outcomes


def run_sequential(predictor: Any, items: Iterable[T], load: Load, handle: Handle, batch_size: int = 1,
                   image_id: Callable[[T], int | None] = lambda item: None) -> None:
    """The same work as :func:`run_pipelined`, one step after another in the calling thread (the reference)."""
    for batch in _batches(items, load, image_id, batch_size, predictor):
        _prepare(predictor, batch)
        _forward(predictor, batch)
        for outcome in _finish(predictor, batch):
            handle(outcome.item, outcome.poses if outcome.poses is not None else outcome.reason)


class _Worker(threading.Thread):
    """A thread that records its exception for the main thread to re-raise, and says when it has ended.

    The main thread waits on ``ended``, never on ``join``: a ``join`` that a signal (Ctrl-C, SIGTERM)
    interrupts can leave the thread marked as stopped while it still runs (CPython 3.11), so a later
    ``join`` would return while the finisher is still writing.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.error = exc
        finally:
            self.ended.set()


def _put(q: queue.Queue, value: Any, stop: threading.Event) -> bool:
    """Put unless the run is stopping; False when it is."""
    while not stop.is_set():
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _put_or_fail(q: queue.Queue, value: Any, consumer: _Worker) -> bool:
    """Try to put for a moment; raise the consumer's error if it died (it will never take the value)."""
    if consumer.error is not None:
        raise consumer.error
    try:
        q.put(value, timeout=0.1)
        return True
    except queue.Full:
        return False


def _get(q: queue.Queue, stop: threading.Event, workers: list[_Worker]) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            for worker in workers:
                if worker.error is not None:
                    raise worker.error
            if stop.is_set():
                return _DONE


def _finish_and_handle(predictor: Any, finished_q: queue.Queue, stop: threading.Event, handle: Handle) -> None:
    """The finisher thread: decode each batch the network has run and hand its outcomes on, in order."""
    while True:
        batch = _get(finished_q, stop, [])
        if batch is _DONE:
            return
        for outcome in _finish(predictor, batch):
            handle(outcome.item, outcome.poses if outcome.poses is not None else outcome.reason)


def run_pipelined(predictor: Any, items: Iterable[T], load: Load, handle: Handle, batch_size: int = 1,
                  image_id: Callable[[T], int | None] = lambda item: None, prefetch: int = 2) -> None:
    """Run ``predictor`` over ``items`` with loading/preparing and finishing/handling overlapping the network.

    Args:
        predictor: has ``prepare(images, ids)``, ``forward(prepared)``, ``finish(prepared, outputs)``
            and ``predict_batch(images, ids)`` (both predictors of :mod:`openpose_lite.inference`).
        items: the stream (file paths, video frames ...), consumed in the loader thread.
        load: an item's image, or the reason it has none (a message).
        handle: called with each item and its Poses (or failure reason), in stream order, in the
            finisher thread; what it raises stops the run and is raised here.
        batch_size: images per network batch.
        image_id: an item's image id for box sources that need one (top-down), else None.
        prefetch: batches prepared ahead of the network (and waiting to be finished).
    """
    stop = threading.Event()
    prepared_q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    finished_q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))

    def load_and_prepare() -> None:
        for batch in _batches(items, load, image_id, batch_size, predictor):
            _prepare(predictor, batch)
            if not _put(prepared_q, batch, stop):
                return
        _put(prepared_q, _DONE, stop)

    loader = _Worker(load_and_prepare, "openpose-lite-loader")
    finisher = _Worker(lambda: _finish_and_handle(predictor, finished_q, stop, handle), "openpose-lite-finisher")
    loader.start()
    finisher.start()
    try:
        while True:
            batch = _get(prepared_q, stop, [loader, finisher])
            if batch is _DONE:
                break
            _forward(predictor, batch)
            while not _put_or_fail(finished_q, batch, finisher):
                pass
        while not _put_or_fail(finished_q, _DONE, finisher):
            pass
        while not finisher.ended.wait(0.1):
            pass
        for worker in (loader, finisher):
            if worker.error is not None:
                raise worker.error
    finally:
        stop.set()
        loader.ended.wait(5)
        # What reached the network is still handed on (at most ``prefetch`` batches); waited for in
        # full, so that once this returns or raises nothing more is handled behind the caller's back
        # (a stopped run writes its index of what was handled next).
        finisher.ended.wait()


def run_newest_first(predictor: Any, items: Iterable[T], load: Load, handle: Handle,
                     image_id: Callable[[T], int | None] = lambda item: None) -> None:
    """Run ``predictor`` over ``items`` one at a time, each taken from ``items`` only when the network is free.

    For a live source whose iterator blocks until a frame is there and yields the newest one:
    the calling thread takes an item, prepares it and runs the network; a finisher thread
    decodes it and calls ``handle`` (in order) while the calling thread runs the next. The next
    is taken once the finisher has started on the last one, so no item waits behind another.
    Arguments as :func:`run_pipelined`'s.
    """
    stop = threading.Event()
    finished_q: queue.Queue = queue.Queue(maxsize=1)

    finisher = _Worker(lambda: _finish_and_handle(predictor, finished_q, stop, handle), "openpose-lite-finisher")
    finisher.start()
    try:
        for batch in _batches(items, load, image_id, 1, predictor):
            _prepare(predictor, batch)
            _forward(predictor, batch)
            while not _put_or_fail(finished_q, batch, finisher):
                pass
            while not finished_q.empty():  # the finisher is still on the item before: take no new one yet
                if finisher.error is not None:
                    raise finisher.error
                time.sleep(0.002)
        while not _put_or_fail(finished_q, _DONE, finisher):
            pass
        while not finisher.ended.wait(0.1):
            pass
        if finisher.error is not None:
            raise finisher.error
    finally:
        stop.set()
        finisher.ended.wait()  # what reached the network is handed on before this returns (see run_pipelined)
