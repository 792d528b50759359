"""Safe decoding: sniff, check every limit from the header, then decode one frame."""

import io
import math
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageOps

from core.imaging.color import to_srgb8
from core.imaging.errors import ImageRejected
from core.imaging.frames import count_frames
from core.imaging.sniff import HEIF, JPEG, sniff_format

pillow_heif.register_heif_opener()
# Pillow warns between MAX_IMAGE_PIXELS and twice that; a warning must never let a bomb through.
warnings.simplefilter("error", Image.DecompressionBombWarning)

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 1000


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
    if limits.max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected("corrupt", f"invalid dimensions {width}x{height}")
        if width * height > limits.max_pixels:
            raise ImageRejected(
                "too_many_pixels", f"{width}x{height} exceeds {limits.max_pixels} pixels"
            )
        frames = count_frames(image, fmt, data, limits.max_frames)
        if frames > limits.max_frames:
            raise ImageRejected("too_many_frames", f"more than {limits.max_frames} frames")
        orientation = 1 if fmt == HEIF else _orientation(image)
        oriented = (height, width) if orientation >= 5 else (width, height)
        if fmt == JPEG and size_hint is not None:
            needed = size_hint(*oriented)
            if orientation >= 5:
                needed = (needed[1], needed[0])
            image.draft(image.mode, needed)
        image.load()
        upright = ImageOps.exif_transpose(image) if orientation != 1 else image
        pixels = to_srgb8(upright)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:
        raise ImageRejected("too_many_pixels", "decoding needs more memory than allowed") from exc
    return DecodedImage(pixels, fmt.lower(), oriented[0], oriented[1], max(frames, 1))


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def draft_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size a decode must keep to serve a rendition scaled by ``scale`` from the source."""
    scale = min(1.0, scale)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))
