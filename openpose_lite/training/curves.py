"""A run's curves, ``curves.png`` in its folder, drawn from the epoch records of ``metrics.jsonl`` (so a
resumed run's picture covers the whole run) at each evaluation; ``benchmarks/plot_training.py`` draws
the same figure for any log. Four panels (a stage and branch has the same colour in the training and
the validation panel; the total is black):

* training loss per stage and branch, and their sum (log axis);
* validation loss, the same series, when the run has a validation set;
* the learning rate of each epoch (log axis);
* validation COCO AP and AP50 at the epochs evaluated (``train.eval_every`` and the last).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openpose_lite.plots import new_figure, plain_log_axis, save_png, series_colours
from openpose_lite.training.metrics import read_jsonl

__all__ = ["curves_figure", "draw_curves", "epoch_records", "loss_terms", "write_curves"]

logger = logging.getLogger(__name__)

# Fields of an epoch's ``train/`` record that are not loss terms (engine.train_one_epoch's; the loop's skip count).
_NOT_LOSSES = {"loss", "lr", "steps", "samples", "seconds", "samples_per_s", "step_seconds", "skipped_images"}
_APS = (("val/AP", "AP", "tab:green", "-", "o"), ("val/AP50", "AP50", "tab:purple", "--", "^"))
_LEGEND_LEFT = 0.85  # the panels take the figure's width up to here, the loss legend the rest


def epoch_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``epoch`` records of a log, one per epoch in order (a resumed run appends: the last one wins)."""
    by_epoch = {r["epoch"]: dict(r) for r in records if r.get("type") == "epoch" and isinstance(r.get("epoch"), int)}
    return [by_epoch[e] for e in sorted(by_epoch)]


def loss_terms(epochs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The loss terms the epochs log (``stage1/pafs``, ``stage1/heatmaps``, ... or ``heatmaps``), stage by stage."""
    names = {key[len("train/"):] for r in epochs for key in r if key.startswith("train/")} - _NOT_LOSSES

    def order(name: str) -> tuple[int, str]:
        stage, _, branch = name.rpartition("/")
        digits = "".join(c for c in stage if c.isdigit())
        return (int(digits) if digits else 0, branch)

    return sorted(names, key=order)


def _line(ax: Any, epochs: Sequence[Mapping[str, Any]], key: str, log: bool = True, **style: Any) -> bool:
    """Plot ``key`` per epoch where the records have a finite number (positive on a ``log`` axis); whether any."""
    points = [(r["epoch"], r[key]) for r in epochs if isinstance(r.get(key), (int, float))
              and math.isfinite(r[key]) and (r[key] > 0 or not log)]
    if points:
        ax.plot(*zip(*points), **style)
    return bool(points)


def _loss_panel(ax: Any, epochs: Sequence[Mapping[str, Any]], split: str, terms: Sequence[str], colours: list[Any]) -> None:
    shown = _line(ax, epochs, f"{split}/loss", color="black", linewidth=2.0, marker="o", markersize=3, label="total")
    for term, colour in zip(terms, colours):
        shown |= _line(ax, epochs, f"{split}/{term}", color=colour, marker=".", label=term)
    what = "training" if split == "train" else "validation"
    ax.set_title(f"{what} loss per stage and branch", fontsize=10)
    ax.set_ylabel(f"{what} loss")
    if shown:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis, subs=(1.0, 2.0, 5.0))
    else:
        ax.text(0.5, 0.5, "no validation set" if split == "val" else "no epoch yet", ha="center", va="center",
                transform=ax.transAxes)


def curves_figure(epochs: Sequence[Mapping[str, Any]], title: str) -> Any:
    """The figure of a run's epoch records (:func:`epoch_records`): four panels, see the module docstring."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(11.0, 7.5)
    (ax_train, ax_val), (ax_lr, ax_ap) = fig.subplots(2, 2)
    terms = loss_terms(epochs)
    colours = series_colours(len(terms))
    _loss_panel(ax_train, epochs, "train", terms, colours)
    _loss_panel(ax_val, epochs, "val", terms, colours)
    if _line(ax_lr, epochs, "train/lr", color="tab:red", marker="o", markersize=3, label="learning rate"):
        ax_lr.set_yscale("log")
        plain_log_axis(ax_lr.yaxis, subs=(1.0, 2.0, 5.0))
    ax_lr.set_title("learning rate", fontsize=10)
    ax_lr.set_ylabel("learning rate")
    for key, label, colour, style, marker in _APS:
        _line(ax_ap, epochs, key, log=False, color=colour, linestyle=style, marker=marker, label=label)
    evaluated = sum("val/AP" in r for r in epochs)
    ax_ap.set_title(f"validation AP, evaluated at {evaluated} of {len(epochs)} epochs", fontsize=10)
    ax_ap.set_ylabel("COCO keypoint AP")
    ax_ap.set_ylim(0, 1)
    if evaluated:
        ax_ap.legend(fontsize=8)
    last = max((r["epoch"] for r in epochs), default=1)
    for ax in (ax_train, ax_val, ax_lr, ax_ap):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, last + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    # one legend for both loss panels (their colours are the same), beside them: inside it would
    # hide curves, and the paper's model has 12 stage-and-branch series
    handles, labels = ax_train.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(0.995, 0.93), fontsize=8, title="loss",
                   title_fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0.0, 0.0, _LEGEND_LEFT, 1.0))
    return fig


def write_curves(metrics: str | os.PathLike[str], out: str | os.PathLike[str], title: str | None = None) -> Path | None:
    """Draw the epochs of the log ``metrics`` into the PNG ``out`` (atomically); None when it holds no epoch yet."""
    epochs = epoch_records(read_jsonl(metrics))
    if not epochs:
        return None
    return save_png(curves_figure(epochs, title or Path(out).parent.name), out)


def draw_curves(metrics: str | os.PathLike[str], out: str | os.PathLike[str], title: str) -> Path | None:
    """:func:`write_curves` for the training loop: a plot that fails costs the picture (a warning), not the
    run; a failed write raises its OSError."""
    try:
        return write_curves(metrics, out, title)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - matplotlib's own failures
        logger.warning("%s not written: %s: %s", out, type(exc).__name__, exc)
        return None
