"""The AVIF clean aperture (``clap``), which libavif reports but Pillow does not apply.

libheif (and so libvips) crops to it; so does the engine, with libheif's rounding, before the
orientation (MIAF orders the transformative properties clap, irot, imir).
"""

import struct
from fractions import Fraction

from core.imaging.errors import ImageRejected
from core.imaging.isobmff import primary_properties


def clean_aperture(data: bytes, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The primary image's ``clap`` as a Pillow crop box, or None when it has none."""
    clap = next((p for p in primary_properties(data) if p[0] == b"clap"), None)
    if clap is None or clap[2] - clap[1] < 32:
        return None
    wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack_from(">IIIIiIiI", data, clap[1])
    if 0 in (wd, hd, xd, yd):
        raise ImageRejected("corrupt", "clean aperture with a zero denominator")
    clean_w, clean_h = Fraction(wn, wd), Fraction(hn, hd)
    # ISO/IEC 14496-12 12.1.4: the aperture's centre is offset from the image's centre.
    left = _floor(Fraction(xn, xd) + Fraction(width - 1, 2) - (clean_w - 1) / 2)
    top = _round(Fraction(yn, yd) + Fraction(height - 1, 2) - (clean_h - 1) / 2)
    right, bottom = _round(clean_w - 1 + left), _round(clean_h - 1 + top)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, width - 1), min(bottom, height - 1)
    if left > right or top > bottom:
        raise ImageRejected("corrupt", "clean aperture outside the image")
    if (left, top, right, bottom) == (0, 0, width - 1, height - 1):
        return None
    return left, top, right + 1, bottom + 1


def _floor(value: Fraction) -> int:
    return int(value)  # towards zero, as libheif's integer division


def _round(value: Fraction) -> int:
    return int(value + Fraction(1, 2))
