"""Overlapped inference over a stream of images: the next batch is read and prepared, and the last
one decoded and handled, while the network works on the current one.

Both predictors split a call into ``prepare(images, ids)`` (host), ``forward(prepared)`` (the network)
and ``finish(prepared, outputs)`` (host: averaging, decoding). :func:`run_pipelined` runs them in three
threads joined by bounded queues: a loader prepares up to ``prefetch`` batches ahead, the calling thread
runs the network (torch releases the GIL), a finisher decodes and hands every item's result to
``handle`` in stream order. :func:`run_newest_first` (a live source) takes the next item only when the
network is free for it, so no frame grows old in a queue.

An item whose image cannot be loaded, or that the predictor refuses (``input_problem``), is
handed to ``handle`` with the reason instead of people; a batch that fails in any step is run
again image by image, so one bad image costs only itself.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from openpose_lite.structures import Poses

__all__ = ["run_newest_first", "run_pipelined", "run_sequential"]

T = TypeVar("T")
# What to run an item with: its image, or the reason it has none (an unreadable file).
Load = Callable[[T], "np.ndarray | str"]
# handle(item, people or the reason the item failed), called in stream order.
Handle = Callable[[T, "Poses | str"], None]

_DONE = object()
# What a failing step may raise for one image (a degenerate image, a model that refuses it).
_RECOVERABLE = (ValueError, RuntimeError, MemoryError)


@dataclass
class _Batch:
    items: list
    images: list
    ids: list
    results: list  # per item its Poses or why it has none (a str); those still None run through the predictor
    prepared: Any = None
    outputs: Any = None
    error: BaseException | None = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": ", 1)[1] if text.startswith("images[") and ": " in text else text


def _batches(items: Iterable[T], load: Load, image_id: Callable[[T], int | None], batch_size: int,
             predictor: Any) -> Iterator[_Batch]:
    """The stream cut into batches; items without an image, or refused by the predictor, get their reason now."""
    problem_of = getattr(predictor, "input_problem", None)
    batch = _Batch([], [], [], [])
    for item in items:
        image = load(item)
        result = image if isinstance(image, str) else None
        if result is None and problem_of is not None:
            result = problem_of(image.shape[:2])
        batch.items.append(item)
        batch.images.append(image)
        batch.ids.append(image_id(item))
        batch.results.append(result)
        if len(batch.items) == batch_size:
            yield batch
            batch = _Batch([], [], [], [])
    if batch.items:
        yield batch


def _todo(batch: _Batch) -> list[int]:
    return [i for i, result in enumerate(batch.results) if result is None]


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


def _finish(predictor: Any, batch: _Batch, handle: Handle) -> None:
    """Decode the batch and hand each item's people (or failure reason) to ``handle``, in order."""
    todo = _todo(batch)
    if todo and batch.error is None:
        try:
            for i, poses in zip(todo, predictor.finish(batch.prepared, batch.outputs)):
                batch.results[i] = poses
        except _RECOVERABLE as exc:
            batch.error = exc
    if batch.error is not None:  # run the batch again image by image: one bad image costs only itself
        for i in _todo(batch):
            try:
                batch.results[i] = predictor.predict_batch([batch.images[i]], [batch.ids[i]])[0]
            except _RECOVERABLE as exc:
                batch.results[i] = _one_line(exc)
    for item, result in zip(batch.items, batch.results):
        handle(item, result)


def run_sequential(predictor: Any, items: Iterable[T], load: Load, handle: Handle, batch_size: int = 1,
                   image_id: Callable[[T], int | None] = lambda item: None) -> None:
    """The same work as :func:`run_pipelined`, one step after another in the calling thread (the reference)."""
    for batch in _batches(items, load, image_id, batch_size, predictor):
        _prepare(predictor, batch)
        _forward(predictor, batch)
        _finish(predictor, batch, handle)


class _Worker(threading.Thread):
    """A thread that records its exception for the main thread to re-raise, and says when it has ended.

    The main thread waits on ``ended``, never on ``join``: a ``join`` that a signal (Ctrl-C, SIGTERM)
    interrupts can leave the thread marked as stopped while it still runs (CPython 3.11), so a later
    ``join`` would return while the finisher is still writing.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(target=target, name=name, daemon=True)
        self.error: BaseException | None = None
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.error = exc
        finally:
            self.ended.set()


def _put(q: queue.Queue, value: Any, stop: threading.Event | None = None, consumer: _Worker | None = None) -> bool:
    """Put, waiting unless the run is stopping (then False) or ``consumer`` died (then its error: it will never
    take the value)."""
    while stop is None or not stop.is_set():
        if consumer is not None and consumer.error is not None:
            raise consumer.error
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
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


def _start_finisher(predictor: Any, handle: Handle, stop: threading.Event, size: int) -> tuple[queue.Queue, _Worker]:
    """The finisher thread, started, and its queue: it decodes each batch the network has run and hands
    its items on, in order, until ``_DONE``."""
    finished_q: queue.Queue = queue.Queue(maxsize=size)

    def finish_and_handle() -> None:
        while (batch := _get(finished_q, stop, [])) is not _DONE:
            _finish(predictor, batch, handle)

    finisher = _Worker(finish_and_handle, "openpose-lite-finisher")
    finisher.start()
    return finished_q, finisher


def _end(finished_q: queue.Queue, finisher: _Worker, workers: tuple[_Worker, ...]) -> None:
    """The stream has ended: wait for the finisher to hand on the last batch, then raise what a worker raised."""
    _put(finished_q, _DONE, consumer=finisher)
    while not finisher.ended.wait(0.1):
        pass
    for worker in workers:
        if worker.error is not None:
            raise worker.error


def run_pipelined(predictor: Any, items: Iterable[T], load: Load, handle: Handle, batch_size: int = 1,
                  image_id: Callable[[T], int | None] = lambda item: None, prefetch: int = 2) -> None:
    """Run ``predictor`` over ``items`` with loading/preparing and finishing/handling overlapping the network.

    ``predictor`` has ``prepare(images, ids)``, ``forward(prepared)``, ``finish(prepared, outputs)`` and
    ``predict_batch(images, ids)``; ``items`` (file paths, video frames ...) are consumed in the loader thread;
    ``handle`` runs in the finisher thread, and what it raises stops the run and is raised here; ``image_id``:
    an item's image id for box sources that need one (top-down); ``prefetch``: batches prepared ahead.
    """
    stop = threading.Event()
    prepared_q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))

    def load_and_prepare() -> None:
        for batch in _batches(items, load, image_id, batch_size, predictor):
            _prepare(predictor, batch)
            if not _put(prepared_q, batch, stop):
                return
        _put(prepared_q, _DONE, stop)

    loader = _Worker(load_and_prepare, "openpose-lite-loader")
    loader.start()
    finished_q, finisher = _start_finisher(predictor, handle, stop, max(1, prefetch))
    try:
        while True:
            batch = _get(prepared_q, stop, [loader, finisher])
            if batch is _DONE:
                break
            _forward(predictor, batch)
            _put(finished_q, batch, consumer=finisher)
        _end(finished_q, finisher, (loader, finisher))
    finally:
        stop.set()
        loader.ended.wait(5)
        # What reached the network is still handed on (at most ``prefetch`` batches); waited for in
        # full, so that once this returns or raises nothing more is handled behind the caller's back
        # (a stopped run writes its index of what was handled next).
        finisher.ended.wait()


def run_newest_first(predictor: Any, items: Iterable[T], load: Load, handle: Handle,
                     image_id: Callable[[T], int | None] = lambda item: None) -> None:
    """Run ``predictor`` over ``items`` one at a time, each taken from ``items`` only when the network is free
    (a live source, see the module docstring): the next once the finisher has started on the last one.
    Arguments as :func:`run_pipelined`'s."""
    stop = threading.Event()
    finished_q, finisher = _start_finisher(predictor, handle, stop, 1)
    try:
        for batch in _batches(items, load, image_id, 1, predictor):
            _prepare(predictor, batch)
            _forward(predictor, batch)
            _put(finished_q, batch, consumer=finisher)
            while not finished_q.empty():  # the finisher is still on the item before: take no new one yet
                if finisher.error is not None:
                    raise finisher.error
                time.sleep(0.002)
        _end(finished_q, finisher, (finisher,))
    finally:
        stop.set()
        finisher.ended.wait()  # what reached the network is handed on before this returns (see run_pipelined)
