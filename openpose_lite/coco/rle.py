"""COCO's run-length encoded masks: reading the compressed ``counts`` string, and the checks an RLE must pass.

pycocotools decodes a short or long RLE into a wrong mask, or writes past its buffer, so an
annotation file's RLEs are checked (:func:`rle_problem`) before pycocotools sees them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_int", "rle_counts_from_string", "rle_problem"]

# Compressed RLE: characters carry 6-bit groups offset by 48 ("0"): 5 value bits, bit 5 = "more".
_RLE_OFFSET, _RLE_MORE, _RLE_SIGN, _RLE_VALUE = 48, 0x20, 0x10, 0x1F


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer (``True`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def rle_problem(rle: dict, image_hw: tuple[int, int]) -> str | None:
    """What is wrong with an RLE segmentation of an ``image_hw`` image, in words, or None.

    Its ``size`` must be the image's [height, width]; its ``counts`` a list of run lengths >= 0 or
    COCO's compressed string, adding up to height x width.
    """
    size, counts = rle.get("size"), rle.get("counts")
    h, w = image_hw
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)) or tuple(size) != (h, w):
        return f"has an RLE segmentation of size {size!r:.40}, expected the image's [height, width] = [{h}, {w}]"
    if isinstance(counts, str):
        try:
            runs = rle_counts_from_string(counts)
        except ValueError as exc:
            return f"has a compressed RLE that does not decode ({exc}), expected COCO's RLE string"
    elif isinstance(counts, list) and all(is_int(v) for v in counts):
        runs = counts
    else:
        return "has RLE counts that are neither a list of integers nor a compressed RLE string"
    if any(r < 0 for r in runs):
        return "has a negative RLE run length, expected run lengths >= 0"
    total = sum(runs)
    if total != h * w:
        return f"has RLE counts summing to {total}, expected height x width = {h} x {w} = {h * w}"
    return None


def rle_counts_from_string(text: str) -> list[int]:
    """Run lengths of a COCO compressed RLE string (``segmentation["counts"]`` as a str).

    The format, as pycocotools writes it (``maskApi.c``, ``rleToString``): each run length is
    cut into 5-bit groups, least significant first; each group is one character ``chr(48 + g)``
    where bit 5 of ``g`` says another group follows and, in the last group, bit 4 is the sign.
    From the fourth run on, the number stored is the difference to the run two places before.

    Raises ValueError for a character outside the format or a string that stops inside a run.
    """
    runs: list[int] = []
    value = shift = 0
    for position, char in enumerate(text):
        group = ord(char) - _RLE_OFFSET
        if not 0 <= group < 2 * _RLE_MORE:
            raise ValueError(f"character {char!r} at position {position}")
        value |= (group & _RLE_VALUE) << shift
        shift += 5
        if group & _RLE_MORE:
            continue
        if group & _RLE_SIGN:
            value -= 1 << shift  # sign-extend the last group
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        value = shift = 0
    if shift:
        raise ValueError("the string ends inside a run length")
    return runs
