"""A placeholder to show while an image loads: a ThumbHash and the dominant colour.

Both come from the smallest full-frame rendition that the render step already holds (no
second decode), shrunk to at most ``PLACEHOLDER_INPUT`` pixels a side: a ThumbHash keeps at
most 7 x 7 low frequencies, which 32 samples a side resolve, and the pure-Python DCT below
then costs a few milliseconds instead of the ~30 ms it takes at the reference's 100 x 100.

``thumbhash()`` is a port of ``rgbaToThumbHash`` from Evan Wallace's reference
implementation (https://github.com/evanw/thumbhash, js/thumbhash.js, MIT licence), kept
operation for operation (the same summation order, ``Math.round`` as ``floor(x + 0.5)``) so
that it gives the same bytes; ``tests/unit/test_placeholder.py`` checks that against the
reference JS (vendored as ``infra/web/thumbhash.js``) run under Node. No PyPI package fits:
the pure-Python ones (``thumbhash``, ``thumbhash-python``) are unmaintained since 2023 and
take ~30 ms an image, and the Rust binding (``fast-thumbhash``) has one release and no arm64
wheel for the Lambda image.
"""

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image

from core.imaging.resize import geometry
from core.imaging.specs import RenditionSpec

PLACEHOLDER_INPUT: Final = 32
MAX_THUMBHASH_SIDE: Final = 100  # the reference refuses larger inputs
_PALETTE_COLOURS: Final = 4
_OPAQUE: Final = 128


@dataclass(frozen=True)
class Placeholder:
    """``thumbhash``: the ThumbHash in standard base64 (at most 25 bytes, 36 characters);
    ``color``: the dominant colour as ``#rrggbb``."""

    thumbhash: str
    color: str


def placeholder_spec(
    specs: Sequence[RenditionSpec], width: int, height: int
) -> RenditionSpec | None:
    """The spec whose rendition feeds the placeholder: the smallest ``inside`` one (the whole
    frame, so the hash keeps the image's aspect ratio), else the smallest of all."""
    if not specs:
        return None
    whole = [spec for spec in specs if spec.fit == "inside"] or list(specs)

    def area(spec: RenditionSpec) -> int:
        w, h = geometry(spec, width, height).size
        return w * h

    return min(whole, key=area)


def placeholder_of(image: Image.Image) -> Placeholder:
    """The placeholder of a rendition (any mode); ``image`` itself is left unchanged."""
    scale = min(1.0, PLACEHOLDER_INPUT / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, Image.Resampling.BOX) if size != image.size else image
    rgba = (small if small.mode == "RGBA" else small.convert("RGBA")).tobytes()
    digest = thumbhash(size[0], size[1], rgba)
    return Placeholder(base64.b64encode(digest).decode("ascii"), dominant_color(rgba))


def dominant_color(rgba: bytes) -> str:
    """The most populous of a few median-cut colours of the opaque pixels (all pixels when
    none is opaque), as ``#rrggbb``."""
    pixels = [rgba[i : i + 3] for i in range(0, len(rgba), 4) if rgba[i + 3] >= _OPAQUE]
    if not pixels:
        pixels = [rgba[i : i + 3] for i in range(0, len(rgba), 4)]
    strip = Image.frombytes("RGB", (len(pixels), 1), b"".join(pixels))
    quantised = strip.quantize(_PALETTE_COLOURS, Image.Quantize.MEDIANCUT)
    counts = quantised.histogram()  # pixels per palette index; a tie goes to the first
    index = max(range(len(counts)), key=counts.__getitem__)
    palette = quantised.getpalette() or [0, 0, 0]
    red, green, blue = palette[3 * index : 3 * index + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def _round(value: float) -> int:
    """JavaScript's Math.round: halves round up (Python's round() rounds them to even)."""
    return math.floor(value + 0.5)


def _encode_channel(
    channel: Sequence[float], w: int, h: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    """The DC term, the AC terms normalised to 0..1, and their scale (the reference's
    ``encodeChannel``)."""
    dc, ac, scale = 0.0, [], 0.0
    for cy in range(ny):
        cx = 0
        while cx * ny < nx * (ny - cy):
            fx = [math.cos(math.pi / w * cx * (x + 0.5)) for x in range(w)]
            f = 0.0
            for y in range(h):
                fy = math.cos(math.pi / h * cy * (y + 0.5))
                for value, fxx in zip(channel[y * w : y * w + w], fx, strict=True):
                    f += value * fxx * fy  # the reference's order: one running sum
            f /= w * h
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * value for value in ac]
    return dc, ac, scale


def thumbhash(w: int, h: int, rgba: bytes) -> bytes:
    """The ThumbHash of a ``w`` x ``h`` RGBA image (not premultiplied), at most 100 a side."""
    if not (0 < w <= MAX_THUMBHASH_SIDE and 0 < h <= MAX_THUMBHASH_SIDE):
        raise ValueError(f"{w}x{h} doesn't fit in 100x100")
    if len(rgba) != w * h * 4:
        raise ValueError(f"expected {w * h * 4} bytes of RGBA, got {len(rgba)}")
    count = w * h
    avg_r = avg_g = avg_b = avg_a = 0.0
    for j in range(0, count * 4, 4):
        alpha = rgba[j + 3] / 255
        avg_r += alpha / 255 * rgba[j]
        avg_g += alpha / 255 * rgba[j + 1]
        avg_b += alpha / 255 * rgba[j + 2]
        avg_a += alpha
    if avg_a:
        avg_r /= avg_a
        avg_g /= avg_a
        avg_b /= avg_a

    has_alpha = avg_a < count
    l_limit = 5 if has_alpha else 7  # fewer luminance bits when there is alpha
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    lum, yb, rg, al = [0.0] * count, [0.0] * count, [0.0] * count, [0.0] * count
    for i in range(count):  # RGBA to LPQA, composited atop the average colour
        j = i * 4
        alpha = rgba[j + 3] / 255
        r = avg_r * (1 - alpha) + alpha / 255 * rgba[j]
        g = avg_g * (1 - alpha) + alpha / 255 * rgba[j + 1]
        b = avg_b * (1 - alpha) + alpha / 255 * rgba[j + 2]
        lum[i] = (r + g + b) / 3
        yb[i] = (r + g) / 2 - b
        rg[i] = r - g
        al[i] = alpha

    l_dc, l_ac, l_scale = _encode_channel(lum, w, h, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(yb, w, h, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(rg, w, h, 3, 3)
    channels = [l_ac, p_ac, q_ac]
    is_landscape = w > h
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (
        (ly if is_landscape else lx)
        | (_round(63 * p_scale) << 3)
        | (_round(63 * q_scale) << 9)
        | (int(is_landscape) << 15)
    )
    digest = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    if has_alpha:
        a_dc, a_ac, a_scale = _encode_channel(al, w, h, 5, 5)
        digest.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        channels.append(a_ac)
    start = len(digest)
    factors = [_round(15 * f) for ac in channels for f in ac]
    digest.extend([0] * ((len(factors) + 1) // 2))
    for index, factor in enumerate(factors):
        digest[start + (index >> 1)] |= factor << ((index & 1) << 2)
    return bytes(digest)
