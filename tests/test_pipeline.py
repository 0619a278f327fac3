"""The overlapped inference stream: same results as step by step, in order, failures isolated, errors raised."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from openpose_lite.inference.pipeline import run_pipelined, run_sequential
from openpose_lite.structures import Poses


class CountingPredictor:
    """A stand-in predictor: one person whose nose x is the image's mean value; records which thread runs what."""

    def __init__(self, refuse: set[int] = frozenset(), fail_forward_on: set[int] = frozenset(), delay: float = 0.0):
        self.refuse, self.fail_forward_on, self.delay = refuse, fail_forward_on, delay
        self.threads: dict[str, set[str]] = {"prepare": set(), "forward": set(), "finish": set()}

    def input_problem(self, image_hw):
        return "too small" if min(image_hw) < 4 else None

    def _people(self, values):
        out = []
        for v in values:
            kps = np.zeros((1, 18, 3), np.float32)
            kps[0, 0] = (v, 1.0, 0.9)
            out.append(Poses(kps, np.array([0.9])))
        return out

    def prepare(self, images, ids):
        self.threads["prepare"].add(threading.current_thread().name)
        values = [float(np.mean(image)) for image in images]
        if any(int(v) in self.refuse for v in values):
            raise ValueError("images[0]: refused by the model")
        return values

    def forward(self, prepared):
        self.threads["forward"].add(threading.current_thread().name)
        time.sleep(self.delay)
        if any(int(v) in self.fail_forward_on for v in prepared):
            raise RuntimeError("the network failed on this batch")
        return prepared

    def finish(self, prepared, outputs):
        self.threads["finish"].add(threading.current_thread().name)
        return self._people(outputs)

    def predict_batch(self, images, ids=None):
        return self.finish(*(lambda p: (p, self.forward(p)))(self.prepare(images, ids)))


def _items(n: int) -> list[int]:
    return list(range(n))


def _load(item: int):
    if item == 3:
        return "cannot read image 3.jpg"
    if item == 5:
        return np.zeros((2, 2, 3), np.uint8)  # degenerate: the predictor's input_problem refuses it
    return np.full((8, 8, 3), item * 10, np.uint8)


def _collect(runner, predictor, batch_size=3, **kwargs) -> list:
    seen = []
    runner(predictor, _items(12), _load, lambda item, result: seen.append(
        (item, result if isinstance(result, str) else float(result.keypoints[0, 0, 0]))), batch_size, **kwargs)
    return seen


def test_pipelined_results_equal_the_step_by_step_ones_in_stream_order():
    expected = _collect(run_sequential, CountingPredictor())
    got = _collect(run_pipelined, CountingPredictor())
    assert got == expected
    assert [item for item, _ in got] == list(range(12))
    assert dict(got)[3] == "cannot read image 3.jpg" and dict(got)[5] == "too small"
    assert dict(got)[7] == 70.0


def test_the_three_steps_run_in_three_threads():
    predictor = CountingPredictor(delay=0.01)
    _collect(run_pipelined, predictor)
    main = threading.current_thread().name
    assert predictor.threads["forward"] == {main}
    assert predictor.threads["prepare"] == {"openpose-lite-loader"}
    # The finisher decodes the batches (a failed batch would be re-run image by image there too).
    assert predictor.threads["finish"] == {"openpose-lite-finisher"}


@pytest.mark.parametrize("runner", [run_sequential, run_pipelined])
def test_a_batch_that_fails_is_run_again_image_by_image(runner):
    # Image 7 (value 70) makes the network fail; the two other images of its batch still get people.
    predictor = CountingPredictor(fail_forward_on={70})
    got = dict(_collect(runner, predictor))
    assert got[6] == 60.0 and got[8] == 80.0
    assert got[7] == "the network failed on this batch"
    refusing = CountingPredictor(refuse={40})
    got = dict(_collect(runner, refusing))
    assert got[4] == "refused by the model" and got[2] == 20.0  # the batch position prefix is dropped


def test_an_error_in_the_handler_stops_the_run_and_is_raised():
    def handle(item, result):
        if item == 4:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_pipelined(CountingPredictor(), _items(50), _load, handle, 2)


def test_an_error_in_the_stream_is_raised():
    def items():
        yield 0
        yield 1
        raise ValueError("the video broke")

    with pytest.raises(ValueError, match="the video broke"):
        run_pipelined(CountingPredictor(), items(), _load, lambda item, result: None, 1)



@pytest.mark.parametrize("runner", ["pipelined", "newest_first"])
def test_an_interrupt_while_the_finisher_writes_returns_only_after_it_has_written(runner):
    # Ctrl-C reaches the main thread while it waits for the finisher, which is still handling the
    # last image. A Thread.join that a signal interrupts can leave the thread marked as stopped
    # (CPython 3.11), so a second join returns at once; the run must still wait for the write.
    import signal

    from openpose_lite.inference.pipeline import run_newest_first

    images = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)]
    written, main = [], threading.main_thread().ident

    def handle(item, poses):
        if item == 2:
            threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()
            time.sleep(0.4)
        written.append(item)

    run = run_pipelined if runner == "pipelined" else run_newest_first
    with pytest.raises(KeyboardInterrupt):
        run(CountingPredictor(), range(3), lambda i: images[i], handle)
        time.sleep(1.0)  # the interrupt lands here if the run returned first
    assert written == [0, 1, 2]
