"""An image's width and height from its header, before anything is decoded.

A 32000 x 32000 PNG of one colour is a 3 MB file that decodes to 3 GB; a JPEG header may claim
65535 x 65535 over a few bytes of data. :mod:`openpose_lite.images` reads the size here first and
refuses what is too large without decoding it. The format is recognised by its content, as
OpenCV's ``imdecode`` does (not by the file name), for every format the OpenCV wheels decode:
JPEG (``SOFn`` frame header), PNG (``IHDR``), GIF (logical screen), BMP (``BITMAPINFOHEADER`` or
the OS/2 core header), TIFF and BigTIFF (tags 256/257 of the first IFD, the page OpenCV reads),
WebP (``VP8``, ``VP8L``, ``VP8X``), AVIF (``ispe`` item properties), JPEG 2000 (``jp2h/ihdr``
box or a raw codestream's ``SIZ``), PBM/PGM/PPM/PAM/PFM, Radiance HDR, Sun raster and OpenEXR
(``dataWindow``). Each parser reads a bounded amount: at most :data:`MAX_HEADER_BYTES` into the
file, however it is built.
"""

from __future__ import annotations

import re
import struct
from typing import BinaryIO, Callable

__all__ = ["HeaderError", "MAX_HEADER_BYTES", "header_size"]

# How far into a file its size may be found. JPEG metadata (EXIF, ICC profiles, XMP) comes in
# segments of at most 64 KB before the frame header; a few MB covers any camera's.
MAX_HEADER_BYTES = 16 << 20
# JPEG frame headers (SOF0-3, 5-7, 9-11, 13-15): baseline, progressive, lossless, arithmetic.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RST0-7


class HeaderError(ValueError):
    """A file in a recognised image format whose header is truncated or malformed (says which format)."""


def _read(fh: BinaryIO, offset: int, n: int, fmt: str) -> bytes:
    if offset < 0 or offset + n > MAX_HEADER_BYTES:
        raise HeaderError(f"{fmt} header points {offset} bytes into the file, past where a header may be")
    fh.seek(offset)
    data = fh.read(n)
    if len(data) < n:
        raise HeaderError(f"truncated {fmt} header")
    return data


def _end(fh: BinaryIO) -> int:
    """Where the header of ``fh`` must end: its size, or :data:`MAX_HEADER_BYTES`."""
    return min(fh.seek(0, 2), MAX_HEADER_BYTES)


def _jpeg(fh: BinaryIO) -> tuple[int, int] | None:
    pos = 2
    while True:
        if _read(fh, pos, 1, "JPEG") != b"\xff":
            # Stray bytes between segments, which decoders skip too: on to the next 0xFF.
            block = fh.read(max(0, min(65536, MAX_HEADER_BYTES - pos - 1)))
            found = block.find(b"\xff")
            pos += 1 + (found if found >= 0 else len(block))
            continue
        pos += 1
        marker = _read(fh, pos, 1, "JPEG")[0]
        pos += 1
        if marker == 0xFF:
            pos -= 1  # fill byte: the marker follows
            continue
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xD9, 0xDA):
            raise HeaderError("JPEG data without a frame header (SOF)")
        (length,) = struct.unpack(">H", _read(fh, pos, 2, "JPEG"))
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", _read(fh, pos + 3, 4, "JPEG"))
            return (width, height) if height else None  # height 0: given later (DNL), left to the decoder
        pos += max(length, 2)


def _png(fh: BinaryIO) -> tuple[int, int]:
    head = _read(fh, 8, 16, "PNG")
    if head[4:8] != b"IHDR":
        raise HeaderError("PNG without an IHDR chunk first")
    return struct.unpack(">II", head[8:16])


def _bmp(fh: BinaryIO) -> tuple[int, int]:
    (dib,) = struct.unpack("<I", _read(fh, 14, 4, "BMP"))
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", _read(fh, 18, 4, "BMP"))
    width, height = struct.unpack("<ii", _read(fh, 18, 8, "BMP"))
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _tiff(fh: BinaryIO) -> tuple[int, int]:
    order = "<" if _read(fh, 0, 2, "TIFF") == b"II" else ">"
    (version,) = struct.unpack(order + "H", _read(fh, 2, 2, "TIFF"))
    big = version == 43
    offset = struct.unpack(order + ("Q" if big else "I"), _read(fh, 8 if big else 4, 8 if big else 4, "TIFF"))[0]
    count_fmt, entry = ("Q", 20) if big else ("H", 12)
    count = struct.unpack(order + count_fmt, _read(fh, offset, struct.calcsize(count_fmt), "TIFF"))[0]
    table = _read(fh, offset + struct.calcsize(count_fmt), min(count, 65535) * entry, "TIFF")
    sizes = {}
    for i in range(0, len(table), entry):
        tag, kind = struct.unpack(order + "HH", table[i:i + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or (BigTIFF) LONG8
            value = table[i + (12 if big else 8):i + entry]
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                raise HeaderError(f"TIFF size tag {tag} of type {kind}")
            sizes[tag] = struct.unpack(order + fmt, value[:struct.calcsize(fmt)])[0]
    if len(sizes) < 2:
        raise HeaderError("TIFF without ImageWidth and ImageLength tags")
    return sizes[256], sizes[257]


def _webp(fh: BinaryIO) -> tuple[int, int]:
    chunk = _read(fh, 12, 18, "WebP")
    kind = chunk[:4]
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", chunk[14:18])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        (bits,) = struct.unpack("<I", chunk[9:13])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(chunk[12:15], "little") + 1, int.from_bytes(chunk[15:18], "little") + 1
    raise HeaderError(f"WebP with a first chunk {kind!r}")


def _boxes(fh: BinaryIO, start: int, end: int, fmt: str):
    """(type, payload start, payload end) of the ISO base media boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", _read(fh, pos, 8, fmt))
        head = 8
        if size == 1:
            (size,) = struct.unpack(">Q", _read(fh, pos + 8, 8, fmt))
            head = 16
        elif size == 0:
            size = end - pos
        if size < head:
            raise HeaderError(f"{fmt} box {kind!r} of size {size}")
        yield kind, pos + head, min(pos + size, end)
        pos += size


def _find_box(fh: BinaryIO, path: tuple[bytes, ...], start: int, end: int, fmt: str, full: tuple[bytes, ...] = ()):
    """Payload ranges of the boxes at ``path`` (``full``: boxes with a 4-byte version and flags first)."""
    for kind, lo, hi in _boxes(fh, start, end, fmt):
        if kind == path[0]:
            lo += 4 if kind in full else 0
            if len(path) == 1:
                yield lo, hi
            else:
                yield from _find_box(fh, path[1:], lo, hi, fmt, full)


def _avif(fh: BinaryIO) -> tuple[int, int]:
    sizes = [struct.unpack(">II", _read(fh, lo + 4, 8, "AVIF"))
             for lo, _ in _find_box(fh, (b"meta", b"iprp", b"ipco", b"ispe"), 0, _end(fh), "AVIF", (b"meta",))]
    if not sizes:
        raise HeaderError("AVIF without an image size (ispe) property")
    return max(sizes, key=lambda s: s[0] * s[1])  # the largest item: the image, not its thumbnail


def _jp2(fh: BinaryIO) -> tuple[int, int]:
    for lo, _ in _find_box(fh, (b"jp2h", b"ihdr"), 0, _end(fh), "JPEG 2000"):
        height, width = struct.unpack(">II", _read(fh, lo, 8, "JPEG 2000"))
        return width, height
    raise HeaderError("JPEG 2000 without a jp2h/ihdr box")


def _j2k(fh: BinaryIO) -> tuple[int, int]:
    x, y, x0, y0 = struct.unpack(">IIII", _read(fh, 8, 16, "JPEG 2000"))
    return x - x0, y - y0


_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\S+)")


def _pnm(fh: BinaryIO) -> tuple[int, int]:
    head = fh.read(4096) if fh.seek(0) == 0 else b""
    if head[:2] == b"P7":  # PAM: WIDTH and HEIGHT lines
        found = dict(re.findall(rb"^(WIDTH|HEIGHT)\s+(\d+)", head, re.M))
        if b"WIDTH" not in found or b"HEIGHT" not in found:
            raise HeaderError("PAM header without WIDTH and HEIGHT")
        return int(found[b"WIDTH"]), int(found[b"HEIGHT"])
    tokens = []
    pos = 2
    while len(tokens) < 2:
        match = _TOKEN.match(head, pos)
        if match is None or not match.group(1).isdigit():
            raise HeaderError("PNM header without a width and height")
        tokens.append(int(match.group(1)))
        pos = match.end()
    return tokens[0], tokens[1]


def _hdr(fh: BinaryIO) -> tuple[int, int]:
    head = fh.read(65536) if fh.seek(0) == 0 else b""
    found = re.search(rb"\n\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", head)
    if found is None:
        raise HeaderError("Radiance HDR header without a resolution line")
    first, second = int(found.group(3)), int(found.group(6))
    return (second, first) if found.group(2) == b"Y" else (first, second)


def _sun(fh: BinaryIO) -> tuple[int, int]:
    return struct.unpack(">II", _read(fh, 4, 8, "Sun raster"))


def _exr(fh: BinaryIO) -> tuple[int, int]:
    head = fh.read(65536) if fh.seek(8) == 8 else b""
    pos = 0
    while pos < len(head) and head[pos]:
        name_end = head.index(b"\0", pos)
        type_end = head.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", head[type_end + 1:type_end + 5])
        value = head[type_end + 5:type_end + 5 + size]
        if head[pos:name_end] == b"dataWindow" and len(value) == 16:
            x0, y0, x1, y1 = struct.unpack("<iiii", value)
            return x1 - x0 + 1, y1 - y0 + 1
        pos = type_end + 5 + size
    raise HeaderError("OpenEXR header without a dataWindow")


_FORMATS: tuple[tuple[Callable[[bytes], bool], Callable[[BinaryIO], tuple[int, int] | None]], ...] = (
    (lambda m: m[:3] == b"\xff\xd8\xff", _jpeg),
    (lambda m: m[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda m: m[:6] in (b"GIF87a", b"GIF89a"), lambda fh: struct.unpack("<HH", _read(fh, 6, 4, "GIF"))),
    (lambda m: m[:2] == b"BM", _bmp),
    (lambda m: m[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    (lambda m: m[:4] == b"RIFF" and m[8:12] == b"WEBP", _webp),
    (lambda m: m[4:8] == b"ftyp" and (b"avif" in m[8:32] or b"avis" in m[8:32]), _avif),
    (lambda m: m[:12] == b"\0\0\0\x0cjP  \r\n\x87\n", _jp2),
    (lambda m: m[:4] == b"\xffO\xffQ", _j2k),
    (lambda m: len(m) > 2 and m[0:1] == b"P" and m[1:2] in b"1234567fF" and m[2:3].isspace(), _pnm),
    (lambda m: m[:2] == b"#?", _hdr),
    (lambda m: m[:4] == b"\x59\xa6\x6a\x95", _sun),
    (lambda m: m[:4] == b"\x76\x2f\x31\x01", _exr),
)


def header_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header of the image file open in ``fh`` (binary, seekable);
    None when its format is none of the module docstring's (or, for JPEG, the height comes later).

    Raises HeaderError naming the format for a truncated or malformed header.
    """
    fh.seek(0)
    magic = fh.read(32)
    for matches, parse in _FORMATS:
        if matches(magic):
            try:
                return parse(fh)
            except (struct.error, ValueError, IndexError) as exc:
                if isinstance(exc, HeaderError):
                    raise
                raise HeaderError(f"malformed header ({exc})") from None
    return None
