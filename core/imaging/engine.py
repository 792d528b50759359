"""The engine entry point: one decode, every rendition, timed by stage."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

from core.imaging.decode import decode, draft_size
from core.imaging.encode import encode, output_format
from core.imaging.limits import Limits
from core.imaging.placeholder import Placeholder, placeholder_of, placeholder_spec
from core.imaging.resize import Step, needed_scale, render_each
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
    placeholder: Placeholder | None = None


def render(
    data: bytes,
    specs: Sequence[RenditionSpec],
    limits: Limits,
    checkpoint: Callable[[str], None] = lambda stage: None,
) -> RenderResult:
    """Decode ``data`` once and produce every rendition in ``specs`` (raises ImageRejected).

    ``checkpoint(stage)`` runs before the decode and before each rendition is resized and
    encoded; whatever it raises (the pipeline's deadline) stops the render there.
    """
    checkpoint("decode")
    started = time.perf_counter()
    decoded = decode(data, limits, lambda w, h: draft_size(w, h, needed_scale(specs, w, h)))
    source = SourceInfo(decoded.format, decoded.width, decoded.height, len(data), decoded.frames)
    clock = time.perf_counter()
    timings = {"decode": _ms(started, clock), "render": 0.0, "encode": 0.0}
    encoded: dict[tuple[object, ...], bytes] = {}
    by_name: dict[tuple[str, str], EncodedRendition] = {}  # (name, format): unique
    # Taken from pixels the loop already has (timed as render): no second decode.
    feeds_placeholder, placeholder = placeholder_spec(specs, source.width, source.height), None
    # Each rendition is encoded as soon as it is rendered, so it can be released early. The
    # steps are lazy: a checkpoint at the end of the loop body runs before the next resize.
    checkpoint("rendition")
    for step, image in render_each(decoded.take_image(), specs, source.width, source.height):
        rendered = time.perf_counter()
        if step.spec is feeds_placeholder:
            placeholder = placeholder_of(image)
            rendered = time.perf_counter()
        by_name[step.spec.name, step.spec.format] = _encode_one(image, step, source.format, encoded)
        del image
        timings["render"] += rendered - clock
        clock = time.perf_counter()
        timings["encode"] += clock - rendered
        if len(by_name) < len(specs):
            checkpoint("rendition")
    timings["render"] = round(timings["render"] * 1000, 2)
    timings["encode"] = round(timings["encode"] * 1000, 2)
    renditions = tuple(by_name[spec.name, spec.format] for spec in specs)
    return RenderResult(source, renditions, timings, placeholder)


def _encode_one(
    image: Image.Image,
    step: Step,
    source_format: str,
    encoded: dict[tuple[object, ...], bytes],
) -> EncodedRendition:
    """Encode one rendition; an identical earlier encode (small sources, where several specs
    keep the source size) is reused from ``encoded`` rather than run again."""
    spec = step.spec
    fmt = output_format(spec, source_format)
    key = (step.pixels_key, fmt.name, spec.effective_quality, spec.background, spec.watermark)
    data = encoded.get(key)
    if data is None:
        marked = apply_watermark(image, spec.watermark) if spec.watermark else image
        data = encoded[key] = encode(marked, spec, fmt)
    return EncodedRendition(
        spec.name, fmt.name, fmt.extension, fmt.content_type, image.width, image.height, data
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
