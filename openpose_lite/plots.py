"""Figures written to files, built on matplotlib's Agg canvas directly, not through ``pyplot``: no display
is needed, no backend is switched for the whole process and nothing is left in pyplot's global list of
open figures (a training run draws one at every evaluation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openpose_lite.io import atomic_write_path

__all__ = ["new_figure", "plain_log_axis", "plain_number", "save_png", "series_colours"]


def new_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A ``matplotlib.figure.Figure`` of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def plain_number(value: float, _position: Any = None) -> str:
    """A tick value as plain digits: 5000, 20, 0.5 (a matplotlib formatter function)."""
    return f"{value:.0f}" if value >= 1 else f"{value:.3g}"


def plain_log_axis(axis: Any, subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """Label a log-scaled matplotlib axis (``ax.xaxis`` / ``ax.yaxis``, after ``set_*scale("log")``)
    with plain numbers at ``subs`` x 10^k, and no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_formatter(NullFormatter())


def series_colours(n: int) -> list[Any]:
    """``n`` distinct colours (matplotlib's qualitative tab10, tab20 beyond ten, a spread of a
    continuous map beyond twenty), none of them black, which is left for totals."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def save_png(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (a reader never sees half a file); returns the path."""
    return atomic_write_path(path, lambda tmp: fig.savefig(tmp, format="png"))
