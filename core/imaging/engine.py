"""The engine entry point: one decode, every rendition, timed by stage."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from core.imaging.decode import DecodedImage, Limits, decode, draft_size
from core.imaging.encode import encode, output_format
from core.imaging.resize import needed_scale, render_all
from core.imaging.specs import RenditionSpec
from core.imaging.watermark import apply_watermark


@dataclass(frozen=True)
class EncodedRendition:
    name: str
    format: str
    extension: str
    content_type: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class SourceInfo:
    format: str
    width: int
    height: int
    bytes: int
    frames: int


@dataclass(frozen=True)
class RenderResult:
    source: SourceInfo
    renditions: tuple[EncodedRendition, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)


def render(data: bytes, specs: Sequence[RenditionSpec], limits: Limits) -> RenderResult:
    """Decode ``data`` once and produce every rendition in ``specs`` (raises ImageRejected)."""
    started = time.perf_counter()
    decoded = decode(data, limits, lambda w, h: draft_size(w, h, needed_scale(specs, w, h)))
    decoded_at = time.perf_counter()
    images = render_all(decoded.image, specs, decoded.width, decoded.height)
    rendered_at = time.perf_counter()
    encoded: dict[tuple[object, ...], bytes] = {}
    renditions = tuple(_encode_one(images[spec.name], spec, decoded, encoded) for spec in specs)
    encoded_at = time.perf_counter()
    source = SourceInfo(decoded.format, decoded.width, decoded.height, len(data), decoded.frames)
    timings = {
        "decode": _ms(started, decoded_at),
        "render": _ms(decoded_at, rendered_at),
        "encode": _ms(rendered_at, encoded_at),
    }
    return RenderResult(source, renditions, timings)


def _encode_one(
    image: Image.Image,
    spec: RenditionSpec,
    decoded: DecodedImage,
    encoded: dict[tuple[object, ...], bytes],
) -> EncodedRendition:
    """Encode one rendition; an identical earlier encode (small sources, where several specs
    keep the source size) is reused from ``encoded`` rather than run again."""
    fmt = output_format(spec, decoded.format)
    key = (id(image), fmt.name, spec.effective_quality, spec.background, spec.watermark)
    data = encoded.get(key)
    if data is None:
        marked = apply_watermark(image, spec.watermark) if spec.watermark else image
        data = encoded[key] = encode(marked, spec, fmt)
    return EncodedRendition(
        spec.name, fmt.name, fmt.extension, fmt.content_type, image.width, image.height, data
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
