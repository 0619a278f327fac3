"""The One Euro filter (Casiez, Roussel, Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter
for Noisy Input in Interactive Systems", CHI 2012): adaptive low-pass smoothing of a signal.

Each sample is blended with the previous output by a first-order low-pass whose cutoff rises with the
speed: ``min_cutoff + beta * |dx|`` (Hz), ``dx`` low-passed at ``d_cutoff``: slow signals are smoothed
hard, fast ones barely (little lag). :class:`OneEuroFilter` filters an array element-wise;
:func:`one_euro_step` is the vectorised step the tracker runs. With timestamps the sampling interval
is the time between two samples, as in the authors' reference (casiez/OneEuroFilter,
``python/OneEuroFilter.py``, ``OneEuroFilter.__call__``: ``1 / (timestamp - lasttime)`` when the
timestamp moved forward, else the last frequency).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "one_euro_step"]


def _alpha(cutoff: np.ndarray | float, te: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled every ``te`` s."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * te))


def one_euro_step(x: np.ndarray, x_prev: np.ndarray, dx_prev: np.ndarray, on: np.ndarray,
                   min_cutoff: float, beta: float, d_cutoff: float, te: float) -> tuple[np.ndarray, np.ndarray]:
    """One One Euro step for every value at once; ``on`` (broadcast to x) says which have a previous sample.

    Values without one start afresh: output the sample itself, speed 0.
    """
    dx = (x - x_prev) / te
    a_d = _alpha(d_cutoff, te)
    dx_hat = a_d * dx + (1.0 - a_d) * dx_prev
    a = _alpha(min_cutoff + beta * np.abs(dx_hat), te)
    x_hat = a * x + (1.0 - a) * x_prev
    return np.where(on, x_hat, x), np.where(on, dx_hat, 0.0)


class OneEuroFilter:
    """The One Euro filter (module docstring) on an array signal, element-wise; ``dx`` is in units per
    second, and at a constant speed the lag tends to ``1 / (2 pi beta)`` units, whatever the speed.

    Call it once per frame with an array of a fixed shape; ``present`` (bool, same shape) marks the values
    measured now; one not present restarts (its next output is the sample itself). ``timestamp`` (s) makes
    the interval the time since the previous sample (``1 / fps`` until two have been seen; one that does
    not move forward keeps the last interval).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.2, d_cutoff: float = 1.0, fps: float = 30.0) -> None:
        for name, value, low_ok in (("min_cutoff", min_cutoff, False), ("beta", beta, True), ("d_cutoff", d_cutoff, False), ("fps", fps, False)):
            if not (math.isfinite(value) and (value >= 0 if low_ok else value > 0)):
                raise ValueError(f"OneEuroFilter: {name} must be {'>= 0' if low_ok else 'positive'}, got {value}")
        self.min_cutoff, self.beta, self.d_cutoff, self.fps = float(min_cutoff), float(beta), float(d_cutoff), float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget the signal: the next call starts afresh."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._on: np.ndarray | None = None
        self._t: float | None = None  # the last timestamp
        self._te = 1.0 / self.fps  # the sampling interval, s

    def __call__(self, x: np.ndarray, present: np.ndarray | None = None, timestamp: float | None = None) -> np.ndarray:
        """Filtered copy of ``x`` (float64); values not ``present`` are returned as they are."""
        if timestamp is not None:
            if not math.isfinite(timestamp):
                raise ValueError(f"OneEuroFilter: timestamp must be a finite number of seconds, got {timestamp}")
            if self._t is not None and timestamp > self._t:
                self._te = timestamp - self._t
            self._t = float(timestamp)
        x = np.asarray(x, dtype=np.float64)
        now = np.ones(x.shape, dtype=bool) if present is None else np.broadcast_to(np.asarray(present, dtype=bool), x.shape)
        if self._x is None:
            self._x, self._dx, self._on = np.zeros(x.shape), np.zeros(x.shape), np.zeros(x.shape, dtype=bool)
        elif self._x.shape != x.shape:
            raise ValueError(f"OneEuroFilter: got a signal of shape {x.shape} after {self._x.shape}; call reset() first")
        on = self._on & now
        x_hat, dx_hat = one_euro_step(x, self._x, self._dx, on, self.min_cutoff, self.beta, self.d_cutoff, self._te)
        self._x = np.where(now, x_hat, 0.0)
        self._dx = np.where(now, dx_hat, 0.0)
        self._on = now.copy()
        return np.where(now, x_hat, x)
