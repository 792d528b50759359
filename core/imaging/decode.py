"""Safe decoding: sniff, check every limit from the header, then decode one frame."""

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pillow_heif
from PIL import (
    AvifImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)
from pillow_heif import HeifImageFile

from core.imaging.clap import clean_aperture
from core.imaging.color import to_srgb8
from core.imaging.errors import ImageRejected
from core.imaging.failures import rejection
from core.imaging.frames import count_frames
from core.imaging.limits import Limits
from core.imaging.png import prepare_png, scale_grey_key
from core.imaging.sniff import AVIF, HEIF, JPEG, PNG, sniff_format

pillow_heif.register_heif_opener()
# The plugins of the allow-list, registered at import (they also hold every writer the
# encoders use): asked for a format it has not registered, Pillow imports all of its ~40
# plugins (Image.init), 90 ms on a process's first image, and loads parsers we never allow.
READERS: Final = (AvifImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin)
# Pillow warns between MAX_IMAGE_PIXELS and twice that; a warning must never let a bomb through.
warnings.simplefilter("error", Image.DecompressionBombWarning)

# The EXIF orientations as transpositions (as in ImageOps.exif_transpose, which also rewrites
# the metadata; the engine drops it instead).
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class DecodedImage:
    """One decoded frame in 8-bit sRGB, oriented, with no metadata.

    ``width`` and ``height`` describe the source after orientation, before any DCT scaling;
    ``image`` may be smaller than that when JPEG draft mode was used.
    """

    image: Image.Image | None
    format: str
    width: int
    height: int
    frames: int

    def take_image(self) -> Image.Image:
        """Hand the pixels over (so that they can be freed as soon as the taker is done)."""
        image, self.image = self.image, None
        if image is None:
            raise RuntimeError("the decoded image was already taken")
        return image


# Given the oriented source size, return the smallest decoded size that is still enough.
SizeHint = Callable[[int, int], tuple[int, int]]


def decode(data: bytes, limits: Limits, size_hint: SizeHint | None = None) -> DecodedImage:
    """Decode ``data`` within ``limits`` or raise ImageRejected with a reason code."""
    if not data:
        raise ImageRejected("empty", "the object has no bytes")
    if len(data) > limits.max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes exceeds {limits.max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected("unsupported_format", "not a JPEG, PNG, WebP, GIF, HEIF or AVIF")
    if fmt == PNG:
        data = prepare_png(data)
    if limits.max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        return _decode(data, fmt, limits, size_hint)
    except (ImageRejected, MemoryError):
        # An image within the pixel limit that finds no memory met other records' memory,
        # not a fault of its bytes: it propagates, so the record is retried, never FAILED.
        raise
    except Exception as exc:  # anything a decoder raises on these bytes is about the bytes
        raise rejection(exc, fmt, data, limits.max_pixels) from exc


def _decode(data: bytes, fmt: str, limits: Limits, size_hint: SizeHint | None) -> DecodedImage:
    image = _open(data, fmt)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt", f"invalid dimensions {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"{width}x{height} exceeds the limit of {limits.max_pixels} pixels"
        )
    frames = count_frames(image, fmt, data, limits.max_frames)
    if frames > limits.max_frames:
        raise ImageRejected("too_many_frames", f"more than {limits.max_frames} frames")
    if fmt == JPEG:  # the orientation comes from APP1, read at open: no pixels needed yet
        orientation = _orientation(image)
        if size_hint is not None:
            needed = size_hint(*_oriented(width, height, orientation))
            image.draft(image.mode, _oriented(*needed, orientation))
        image.load()
    else:  # PNG's getexif() loads the pixels; HEIF's orientation is applied by libheif
        image.load()
        orientation = 1 if fmt == HEIF else _orientation(image)
    if fmt == PNG:
        scale_grey_key(image, data)
    if fmt == AVIF and (box := clean_aperture(data, *image.size)) is not None:
        image = image.crop(box)
        width, height = image.size
    if orientation != 1:
        image = image.transpose(_TRANSPOSE[orientation])
    oriented = _oriented(width, height, orientation)
    return DecodedImage(to_srgb8(image), fmt.lower(), oriented[0], oriented[1], max(frames, 1))


def _open(data: bytes, fmt: str) -> Image.Image:
    if fmt == HEIF:
        # pillow-heif's own sniff refuses the mif3 ("mini") brand, which libheif reads;
        # sniff_format has already decided that these bytes are HEIF.
        return HeifImageFile(io.BytesIO(data))  # type: ignore[no-untyped-call]  # untyped upstream
    return Image.open(io.BytesIO(data), formats=[fmt])


def _oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size after the EXIF ``orientation`` (5-8 swap the axes); also its own inverse."""
    return (height, width) if orientation >= 5 else (width, height)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, or 1: a broken EXIF block never rejects a decodable image."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a metadata parse failure alone never rejects
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def draft_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size a decode must keep to serve a rendition scaled by ``scale`` from the source."""
    scale = min(1.0, scale)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))
