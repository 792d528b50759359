"""Builders for engine test inputs. Every input is generated here with Pillow or pillow-heif;
no binary file is committed. Plain functions, so any test module can import them."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import pillow_heif
from PIL import ExifTags, Image, PngImagePlugin

from core.imaging.decode import DecodedImage

pillow_heif.register_heif_opener()

RGB = tuple[int, int, int]

# Distinct, well separated colours for the four quadrants of an orientation probe.
TOP_LEFT: RGB = (220, 30, 30)  # red
TOP_RIGHT: RGB = (30, 190, 40)  # green
BOTTOM_LEFT: RGB = (30, 40, 220)  # blue
BOTTOM_RIGHT: RGB = (235, 225, 40)  # yellow
QUADRANTS = {"tl": TOP_LEFT, "tr": TOP_RIGHT, "bl": BOTTOM_LEFT, "br": BOTTOM_RIGHT}

XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmp:CreatorTool="SecretTool"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)
SECRET_MAKE = "SecretCam"


def photo_like(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """An image with detail at every scale (a fractal), so every rendition's bytes differ; as
    PNG it has an alpha channel too."""
    image = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 64).convert("RGB")
    if fmt == "PNG":
        image.putalpha(image.getchannel("G"))
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=90)
    return buffer.getvalue()


def to_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """Encode ``image`` in memory."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    """Open and fully load encoded bytes (raises when they do not decode)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def image_of(decoded: DecodedImage) -> Image.Image:
    """The decoded pixels (present until the engine takes them)."""
    image = decoded.image
    assert image is not None
    return image


def quadrants(width: int = 48, height: int = 32) -> Image.Image:
    """An RGB image whose four quadrants have distinct colours (so any flip or turn shows)."""
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    image.paste(TOP_LEFT, (0, 0, half_w, half_h))
    image.paste(TOP_RIGHT, (half_w, 0, width, half_h))
    image.paste(BOTTOM_LEFT, (0, half_h, half_w, height))
    image.paste(BOTTOM_RIGHT, (half_w, half_h, width, height))
    return image


def quadrant_samples(image: Image.Image) -> dict[str, RGB]:
    """The colour at the centre of each quadrant of ``image`` (as RGB)."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    points = {
        "tl": (w // 4, h // 4),
        "tr": (3 * w // 4, h // 4),
        "bl": (w // 4, 3 * h // 4),
        "br": (3 * w // 4, 3 * h // 4),
    }
    return {name: pixel(rgb, xy) for name, xy in points.items()}


def pixel(image: Image.Image, xy: tuple[int, int]) -> RGB:
    value = image.convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return int(value[0]), int(value[1]), int(value[2])


def close(actual: Sequence[int], expected: Sequence[int], tolerance: int = 12) -> bool:
    return len(actual) >= len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False)
    )


def stored_for_orientation(display: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores so that a viewer honouring EXIF ``orientation`` shows
    ``display``. Built from the EXIF definitions of where the stored row 0 / column 0 lie,
    independently of Pillow's ``exif_transpose``."""
    w, h = display.size
    size = (w, h) if orientation <= 4 else (h, w)
    stored = Image.new(display.mode, size)
    src = display.load()
    dst = stored.load()
    assert src is not None and dst is not None
    for sy in range(size[1]):
        for sx in range(size[0]):
            dst[sx, sy] = src[_display_xy(orientation, sx, sy, w, h)]
    return stored


def _display_xy(orientation: int, sx: int, sy: int, w: int, h: int) -> tuple[int, int]:
    mapping = {
        1: (sx, sy),  # row 0 top, column 0 left
        2: (w - 1 - sx, sy),  # row 0 top, column 0 right
        3: (w - 1 - sx, h - 1 - sy),  # row 0 bottom, column 0 right
        4: (sx, h - 1 - sy),  # row 0 bottom, column 0 left
        5: (sy, sx),  # row 0 left, column 0 top
        6: (w - 1 - sy, sx),  # row 0 right, column 0 top
        7: (w - 1 - sy, h - 1 - sx),  # row 0 right, column 0 bottom
        8: (sy, h - 1 - sx),  # row 0 left, column 0 bottom
    }
    return mapping[orientation]


def exif_bytes(orientation: int | None = None, gps: bool = False) -> bytes:
    """EXIF with a camera make, optionally an orientation and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = SECRET_MAKE
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        info = exif.get_ifd(ExifTags.IFD.GPSInfo)
        info[ExifTags.GPS.GPSLatitudeRef] = "N"
        info[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.5)
        info[ExifTags.GPS.GPSLongitudeRef] = "W"
        info[ExifTags.GPS.GPSLongitude] = (0.0, 7.0, 39.0)
    return exif.tobytes()


def with_metadata(image: Image.Image, fmt: str, orientation: int | None = None) -> bytes:
    """``image`` encoded as ``fmt`` with EXIF (incl. GPS) and XMP attached."""
    exif = exif_bytes(orientation, gps=True)
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
        return to_bytes(image, "PNG", exif=exif, pnginfo=text)
    options: dict[str, Any] = {"exif": exif, "xmp": XMP_PACKET}
    if fmt == "JPEG":
        options["quality"] = 95
    return to_bytes(image, fmt, **options)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def raw_png(
    width: int, height: int, rows: bytes, *, bit_depth: int = 8, colour_type: int = 2
) -> bytes:
    """A PNG assembled by hand: ``rows`` are the filtered scanlines (before zlib).

    Used for a header that claims far more pixels than the file holds, and for 16-bit RGB,
    which Pillow reads but cannot write.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def png_rgb16(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG filled with ``colour`` (values 0..65535)."""
    row = b"\x00" + struct.pack(">3H", *colour) * width
    return raw_png(width, height, row * height, bit_depth=16, colour_type=2)


def animated(
    fmt: str, colours: Iterable[RGB], size: tuple[int, int] = (16, 16), **options: Any
) -> bytes:
    """An animation with one solid frame per colour (consecutive colours must differ)."""
    frames = [Image.new("RGB", size, c) for c in colours]
    return to_bytes(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0, **options
    )


@lru_cache(maxsize=4)
def many_frame_gif(count: int) -> bytes:
    """A 1x1 GIF with ``count`` frames (alternating black and white so none are merged)."""
    frames = []
    for i in range(count):
        frame = Image.new("P", (1, 1), i % 2)
        frame.putpalette([0, 0, 0, 255, 255, 255])
        frames.append(frame)
    return to_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF ``ftyp`` box (what HEIF and AVIF files open with)."""
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body
