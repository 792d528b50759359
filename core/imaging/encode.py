"""Encoders with settings chosen by measurement (see the bench), and no metadata in the output."""

import io
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image

from core.imaging.specs import RenditionSpec

# Measured with `imgpipe bench`: see README "Encoder settings".
WEBP_METHOD: Final = 2
AVIF_SPEED: Final = 8
JPEG_OPTIMIZE: Final = True
JPEG_PROGRESSIVE: Final = True

_SOURCE_TO_OUTPUT: Final = {
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "gif": "png",
    "heif": "jpeg",
    "avif": "avif",
}


@dataclass(frozen=True)
class OutputFormat:
    name: str
    extension: str
    content_type: str


OUTPUT_FORMATS: Final = {
    "webp": OutputFormat("webp", "webp", "image/webp"),
    "avif": OutputFormat("avif", "avif", "image/avif"),
    "jpeg": OutputFormat("jpeg", "jpg", "image/jpeg"),
    "png": OutputFormat("png", "png", "image/png"),
}


def output_format(spec: RenditionSpec, source_format: str) -> OutputFormat:
    """Resolve ``format: source`` to a web format for the source (HEIF becomes JPEG)."""
    name = _SOURCE_TO_OUTPUT[source_format] if spec.format == "source" else spec.format
    return OUTPUT_FORMATS[name]


def encode(image: Image.Image, spec: RenditionSpec, fmt: OutputFormat) -> bytes:
    """Encode ``image`` as ``fmt``; JPEG flattens alpha onto the spec's background."""
    options: dict[str, Any]
    quality = spec.effective_quality
    if fmt.name == "jpeg":
        if image.mode != "RGB":
            image = _flatten(image, spec.background_rgb)
        options = {"quality": quality, "optimize": JPEG_OPTIMIZE, "progressive": JPEG_PROGRESSIVE}
    elif fmt.name == "webp":
        options = {"quality": quality, "method": WEBP_METHOD}
    elif fmt.name == "avif":
        # One thread: records already run in parallel, one per core.
        options = {"quality": quality, "speed": AVIF_SPEED, "max_threads": 1}
    else:
        options = {"compress_level": 6}
    buffer = io.BytesIO()
    image.save(buffer, fmt.name.upper(), **options)
    return buffer.getvalue()


def _flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    canvas = Image.new("RGB", image.size, background)
    canvas.paste(image, mask=image.getchannel("A"))
    return canvas
