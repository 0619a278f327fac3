"""The speed-vs-people figure: every series its own colour, line style and marker, so none hides another;
whole pipelines and their parts a panel each, so a total and its network time (1% apart) never share axes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpose_lite.plots import new_figure, plain_log_axis, save_png

if TYPE_CHECKING:
    from openpose_lite.bench.run import BenchResult
    from openpose_lite.bench.speed import SpeedRow

__all__ = ["plot_speed", "speed_figure"]

logger = logging.getLogger(__name__)

# (label, value of a row in ms, colour, line style, marker): every colour once in the figure,
# every line style once per panel.
_Series = tuple[str, Callable[["SpeedRow"], float], str, str, str]
_PIPELINES: tuple[_Series, ...] = (
    ("BU total", lambda r: r.bu_total_ms, "tab:blue", "-", "o"),
    ("TD total, batched", lambda r: r.td_total_batched_ms, "tab:red", "--", "s"),
    ("TD total, 1-by-1", lambda r: r.td_total_single_ms, "tab:orange", ":", "^"),
)
_BOX_SOURCE: _Series = ("TD box source (bottom-up)", lambda r: r.td_box_ms, "tab:purple", "-.", "d")
_PARTS: tuple[_Series, ...] = (
    ("BU network", lambda r: r.bu_network_ms, "tab:green", "-", "o"),
    ("BU decode (GT maps)", lambda r: r.bu_decode_gt_ms, "tab:olive", "-.", "D"),
    ("TD network, batched", lambda r: r.td_network_batched_ms, "tab:brown", "--", "v"),
    ("TD crops + decode", lambda r: r.td_crop_ms + r.td_decode_ms, "tab:pink", ":", "x"),
)


def _panel(ax: Any, rows: list["SpeedRow"], series: tuple[_Series, ...], title: str) -> None:
    from matplotlib.ticker import NullLocator

    people = [r.people for r in rows]
    for label, value, colour, style, marker in series:
        # A log axis cannot show 0 (a top-down branch without boxes): leave such points out.
        points = [(x, value(r)) for x, r in zip(people, rows) if value(r) > 0]
        if points:
            ax.plot(*zip(*points), color=colour, linestyle=style, marker=marker, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(people)
    ax.set_xticklabels([str(p) for p in people])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("people in the image")
    ax.set_ylabel("ms per image")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


def speed_figure(result: "BenchResult") -> Any:
    """The matplotlib figure of a run's speed rows; needs matplotlib."""
    pipelines = _PIPELINES + ((_BOX_SOURCE,) if result.config.box_source != "gt" else ())
    fig = new_figure(11.0, 5.2)
    left, right = fig.subplots(1, 2)
    _panel(left, result.speed, pipelines, "whole pipelines")
    _panel(right, result.speed, _PARTS, "their parts")
    h, w = result.config.image_hw
    threads = result.info["threads"]
    fig.suptitle(f"Top-down vs bottom-up, {h}x{w} image, {result.info['device']}, torch threads: {threads}"
                 + (" (random weights)" if result.info.get("random_weights") else ""), fontsize=11)
    fig.tight_layout()
    return fig


def plot_speed(result: "BenchResult", path: str | Path) -> Path | None:
    """:func:`speed_figure` as a PNG, written atomically; None, with a warning, without matplotlib."""
    try:
        fig = speed_figure(result)
    except ImportError:
        logger.warning("matplotlib is not installed: %s not written (pip install matplotlib)", path)
        return None
    return save_png(fig, path)
