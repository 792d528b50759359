"""Build ICC v2 matrix/TRC RGB display profiles in code (no third-party profile is committed).

A profile is defined by its primaries and white point (CIE xy) and a tone curve: either a pure
gamma or the piecewise sRGB curve (sampled). The colorants are adapted to the D50 PCS with the
Bradford transform, as ICC v2 requires. ``reference_to_srgb`` converts one pixel the textbook way
(linearise, matrix to XYZ, matrix to linear sRGB, clip, encode), so tests can check a CMS result
against independent arithmetic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

Matrix = tuple[tuple[float, float, float], ...]
Vector = tuple[float, float, float]

D50_XYZ: Vector = (0.9642, 1.0, 0.8249)  # the ICC PCS illuminant
D65_XY = (0.3127, 0.3290)

_BRADFORD: Matrix = (
    (0.8951, 0.2664, -0.1614),
    (-0.7502, 1.7135, 0.0367),
    (0.0389, -0.0685, 1.0296),
)

SRGB_CURVE = "srgb"


@dataclass(frozen=True)
class RGBSpace:
    """An RGB colour space: red, green and blue primaries, white point, and transfer curve."""

    name: str
    red: tuple[float, float]
    green: tuple[float, float]
    blue: tuple[float, float]
    white: tuple[float, float]
    trc: float | str  # a gamma, or SRGB_CURVE

    def to_xyz(self) -> Matrix:
        """The matrix from linear RGB to XYZ (relative to this space's own white, Y=1)."""
        return rgb_to_xyz_matrix(self.red, self.green, self.blue, self.white)

    def decode(self, value: float) -> float:
        """Encoded 0..1 to linear 0..1."""
        if self.trc == SRGB_CURVE:
            return srgb_to_linear(value)
        assert isinstance(self.trc, float)
        return float(value**self.trc)

    def encode(self, value: float) -> float:
        """Linear 0..1 to encoded 0..1."""
        if self.trc == SRGB_CURVE:
            return linear_to_srgb(value)
        assert isinstance(self.trc, float)
        return float(value ** (1 / self.trc))


SRGB = RGBSpace("sRGB", (0.64, 0.33), (0.30, 0.60), (0.15, 0.06), D65_XY, SRGB_CURVE)
DISPLAY_P3 = RGBSpace(
    "Display P3", (0.680, 0.320), (0.265, 0.690), (0.150, 0.060), D65_XY, SRGB_CURVE
)
ADOBE_RGB = RGBSpace(
    "Adobe RGB (1998)", (0.64, 0.33), (0.21, 0.71), (0.15, 0.06), D65_XY, 563 / 256
)


# --- arithmetic ------------------------------------------------------------------------------


def xy_to_xyz(xy: tuple[float, float]) -> Vector:
    x, y = xy
    return x / y, 1.0, (1 - x - y) / y


def mat_mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(
        (
            sum(a[i][k] * b[k][0] for k in range(3)),
            sum(a[i][k] * b[k][1] for k in range(3)),
            sum(a[i][k] * b[k][2] for k in range(3)),
        )
        for i in range(3)
    )


def mat_vec(a: Matrix, v: Vector) -> Vector:
    r0, r1, r2 = a
    return (
        r0[0] * v[0] + r0[1] * v[1] + r0[2] * v[2],
        r1[0] * v[0] + r1[1] * v[1] + r1[2] * v[2],
        r2[0] * v[0] + r2[1] * v[1] + r2[2] * v[2],
    )


def mat_inv(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if abs(det) < 1e-12:
        raise ValueError("singular matrix")
    return (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )


def rgb_to_xyz_matrix(
    red: tuple[float, float],
    green: tuple[float, float],
    blue: tuple[float, float],
    white: tuple[float, float],
) -> Matrix:
    """Columns are the XYZ of each primary, scaled so that RGB (1, 1, 1) gives the white."""
    r, g, b = xy_to_xyz(red), xy_to_xyz(green), xy_to_xyz(blue)
    primaries: Matrix = ((r[0], g[0], b[0]), (r[1], g[1], b[1]), (r[2], g[2], b[2]))
    s = mat_vec(mat_inv(primaries), xy_to_xyz(white))
    return tuple((row[0] * s[0], row[1] * s[1], row[2] * s[2]) for row in primaries)


def bradford(source_white: Vector, target_white: Vector) -> Matrix:
    """Chromatic adaptation (XYZ to XYZ) from one white to another."""
    src = mat_vec(_BRADFORD, source_white)
    dst = mat_vec(_BRADFORD, target_white)
    scale: Matrix = ((dst[0] / src[0], 0, 0), (0, dst[1] / src[1], 0), (0, 0, dst[2] / src[2]))
    return mat_mul(mat_inv(_BRADFORD), mat_mul(scale, _BRADFORD))


def srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def linear_to_srgb(v: float) -> float:
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def reference_to_srgb(space: RGBSpace, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Convert one 8-bit pixel from ``space`` to sRGB by relative colorimetry, clipping."""
    linear = tuple(space.decode(c / 255) for c in rgb)
    xyz = mat_vec(space.to_xyz(), (linear[0], linear[1], linear[2]))
    if space.white != SRGB.white:
        xyz = mat_vec(bradford(xy_to_xyz(space.white), xy_to_xyz(SRGB.white)), xyz)
    out = mat_vec(mat_inv(SRGB.to_xyz()), xyz)
    r, g, b = (round(255 * SRGB.encode(min(1.0, max(0.0, c)))) for c in out)
    return r, g, b


# --- ICC encoding ----------------------------------------------------------------------------


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: Vector) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15f16(v) for v in xyz)


def _curve_tag(trc: float | str) -> bytes:
    if trc == SRGB_CURVE:
        points = [round(65535 * srgb_to_linear(i / 1023)) for i in range(1024)]
        return b"curv" + bytes(4) + struct.pack(f">I{len(points)}H", len(points), *points)
    assert isinstance(trc, float)
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(trc * 256))


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # Unicode language code and count
        + struct.pack(">HB", 0, 0)  # ScriptCode code and count
        + bytes(67)
    )


def _text_tag(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\0"


def build_profile(space: RGBSpace, description: str | None = None) -> bytes:
    """An ICC v2 display-class RGB matrix/TRC profile for ``space``."""
    white = xy_to_xyz(space.white)
    colorants = mat_mul(bradford(white, D50_XYZ), space.to_xyz())
    curve = _curve_tag(space.trc)
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc_tag(description or space.name)),
        (b"cprt", _text_tag("No copyright: generated by the imgpipe tests")),
        (b"wtpt", _xyz_tag(white)),
        (b"rXYZ", _xyz_tag((colorants[0][0], colorants[1][0], colorants[2][0]))),
        (b"gXYZ", _xyz_tag((colorants[0][1], colorants[1][1], colorants[2][1]))),
        (b"bXYZ", _xyz_tag((colorants[0][2], colorants[1][2], colorants[2][2]))),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries: list[bytes] = []
    body = b""
    placed: dict[bytes, int] = {}
    for signature, data in tags:
        if data in placed:  # the three TRCs share one copy, as real profiles do
            entries.append(struct.pack(">4sII", signature, placed[data], len(data)))
            continue
        placed[data] = offset + len(body)
        entries.append(struct.pack(">4sII", signature, placed[data], len(data)))
        body += data + bytes(-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4)  # platform
        + struct.pack(">I", 0)  # flags
        + bytes(8)  # manufacturer, model
        + bytes(8)  # attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + b"".join(_s15f16(v) for v in D50_XYZ)
        + bytes(4)  # creator
    )
    header += bytes(128 - len(header))
    table = struct.pack(">I", len(tags)) + b"".join(entries)
    return header + table + body


def display_p3() -> bytes:
    return build_profile(DISPLAY_P3)


def adobe_rgb() -> bytes:
    return build_profile(ADOBE_RGB)
