"""The engine entry point: one decode, every rendition, timed by stage."""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from PIL import Image

from core.imaging.decode import decode, draft_size
from core.imaging.encode import encode, output_format
from core.imaging.limits import Limits
from core.imaging.parallel import EncodeJobs
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
    encoder: Executor | None = None,
) -> RenderResult:
    """Decode ``data`` once and produce every rendition in ``specs`` (raises ImageRejected).

    ``checkpoint(stage)`` runs before the decode and before each rendition is resized and
    encoded; whatever it raises (the pipeline's deadline) stops the render there. With an
    ``encoder`` (see ``parallel.shared_encoder``) the renditions are encoded on it while the
    next one is resized; the output bytes are the same either way.
    """
    checkpoint("decode")
    started = time.perf_counter()
    decoded = decode(data, limits, lambda w, h: draft_size(w, h, needed_scale(specs, w, h)))
    source = SourceInfo(decoded.format, decoded.width, decoded.height, len(data), decoded.frames)
    timings = {"decode": _ms(started, time.perf_counter())}
    jobs = EncodeJobs(encoder)
    keys: dict[tuple[str, str], tuple[tuple[object, ...], EncodedRendition]] = {}
    # Taken from pixels the loop already has (timed as render): no second decode.
    feeds_placeholder, placeholder = placeholder_spec(specs, source.width, source.height), None
    resize_s = 0.0
    submitted: set[int] = set()  # ids of the images handed to the encoder
    # Each rendition is submitted as soon as it is rendered, so it can be released early. The
    # steps are lazy: a checkpoint at the end of the loop body runs before the next resize.
    checkpoint("rendition")
    try:
        steps = render_each(decoded.take_image(), specs, source.width, source.height, encoder)
        while True:
            clock = time.perf_counter()
            step_image = next(steps, None)
            if step_image is not None and step_image[0].spec is feeds_placeholder:
                placeholder = placeholder_of(step_image[1])
            resize_s += time.perf_counter() - clock
            if step_image is None:
                break
            step, image = step_image
            if encoder is not None:  # the same pixels in another format: Image.save sets
                if id(image) in submitted:  # encoderinfo on the image, so concurrent saves
                    image = image.copy()  # get a copy each (inline saves run one by one)
                submitted.add(id(image))
            last = len(keys) + 1 == len(specs)
            # (name, format) is unique: the responsive preset has each name in three formats.
            keys[step.spec.name, step.spec.format] = _submit(jobs, image, step, source.format, last)
            del image, step_image
            if len(keys) < len(specs):
                checkpoint("rendition")
        renditions = tuple(
            replace(job[1], data=jobs.result(job[0]))
            for job in (keys[s.name, s.format] for s in specs)
        )
    except BaseException:
        jobs.cancel()
        raise
    timings["render"] = round(resize_s * 1000, 2)
    # The rest of the wall time: encoding inline, or waiting for the encodes on the pool (their
    # own durations overlap the resizes), so that the three stages add up to the render's wall.
    total_ms = (time.perf_counter() - started) * 1000
    timings["encode"] = round(max(0.0, total_ms - timings["decode"] - timings["render"]), 2)
    return RenderResult(source, renditions, timings, placeholder)


def _submit(
    jobs: EncodeJobs, image: Image.Image, step: Step, source_format: str, last: bool
) -> tuple[tuple[object, ...], EncodedRendition]:
    """Submit one rendition's encode; an identical earlier one (small sources, where several
    specs keep the source size) is reused rather than run again. Returns its job key and the
    rendition without its bytes."""
    spec = step.spec
    fmt = output_format(spec, source_format)
    key = (step.pixels_key, fmt.name, spec.effective_quality, spec.background, spec.watermark)

    def run(pixels: Image.Image) -> bytes:
        marked = apply_watermark(pixels, spec.watermark) if spec.watermark else pixels
        return encode(marked, spec, fmt)

    jobs.submit(key, image, run, inline=last)
    rendition = EncodedRendition(
        spec.name, fmt.name, fmt.extension, fmt.content_type, image.width, image.height, b""
    )
    return key, rendition


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
