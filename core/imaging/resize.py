"""Rendition geometry and the decode-once, largest-first resize chain."""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from PIL import Image

from core.imaging.parallel import has_idle_thread
from core.imaging.resample import BANDS, VipsPixels
from core.imaging.specs import RenditionSpec

# What the resize chain holds: grey and RGB pixels in libvips (its SIMD Lanczos), the other
# modes (alpha, which Pillow resizes premultiplied) as Pillow images.
Pixels = Image.Image | VipsPixels

# Pillow first reduces by an integer factor with a box filter while the image stays at least
# this many times the target, then finishes with LANCZOS: close to a full LANCZOS, much faster.
REDUCING_GAP = 2.0
# A rendition is derived from an earlier, larger full-frame rendition only when that one is at
# least this many times the target size, so the second LANCZOS pass stays visually lossless.
MIN_DERIVE_RATIO = 1.4
# With an executor that has a thread free, an output of at least this many pixels is resized
# as two bands of rows, one on the executor; the bytes are the same. Below it the hand-off
# costs more than it saves.
MIN_SPLIT_PIXELS = 250_000
# ...and, for Pillow's modes, only from a source of at most this many pixels: its horizontal
# bands are copies of the source's rows (at most 32 MB here), and the two explicit passes reduce
# each axis apart, so a larger source keeps Pillow's single call and the memory the README's
# table measured. libvips' bands read the source in place, so they have no such limit.
MAX_SPLIT_SOURCE_PIXELS = 8_000_000


@dataclass(frozen=True)
class Geometry:
    """Where a spec lands on a given source (orientation applied).

    ``size`` is the output size. ``scale`` is the full frame's size at the output's scale,
    which is what a source must cover for the result to be sharp. ``region`` is the part of
    the source that is kept (``cover`` crops its centre), in source pixels; ``None`` keeps
    the whole frame.
    """

    size: tuple[int, int]
    scale: tuple[int, int]
    region: tuple[float, float, float, float] | None = None


def geometry(spec: RenditionSpec, width: int, height: int) -> Geometry:
    """Output geometry of ``spec`` on a ``width`` x ``height`` source."""
    if spec.fit == "exact":
        return Geometry((spec.width, spec.height), (spec.width, spec.height))
    if spec.fit == "inside":
        size = _scaled(width, height, min(spec.width / width, spec.height / height, 1.0))
        return Geometry(size, size)
    # cover: crop the centre in source coordinates, then resize only that region, so an
    # extreme aspect ratio never builds a huge intermediate image.
    scale = max(spec.width / width, spec.height / height)
    kept_w, kept_h = min(width, spec.width / scale), min(height, spec.height / scale)
    left, top = (width - kept_w) / 2, (height - kept_h) / 2
    full = _scaled(width, height, scale)
    return Geometry((spec.width, spec.height), full, (left, top, left + kept_w, top + kept_h))


def needed_scale(specs: Sequence[RenditionSpec], width: int, height: int) -> float:
    """The largest fraction of the source that any spec needs (for JPEG DCT scaling)."""
    scale = 0.0
    for spec in specs:
        sw, sh = geometry(spec, width, height).scale
        scale = max(scale, sw / width, sh / height)
    return min(scale, 1.0)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Step:
    """One rendition: its geometry and where it is resized from (-1: the decoded base,
    otherwise the index of an earlier ``inside`` step, which keeps the full frame)."""

    spec: RenditionSpec
    geometry: Geometry
    source: int

    @property
    def pixels_key(self) -> tuple[int, Geometry]:
        """Steps with equal keys produce identical pixels."""
        return self.source, self.geometry


def plan(
    specs: Sequence[RenditionSpec], width: int, height: int, base_size: tuple[int, int]
) -> list[Step]:
    """Largest first; each step takes the smallest earlier full-frame result that is still at
    least MIN_DERIVE_RATIO times its target, or else the decoded base."""
    ordered = sorted(specs, key=lambda s: _area(geometry(s, width, height).scale), reverse=True)
    steps: list[Step] = []
    for spec in ordered:
        geo = geometry(spec, width, height)
        source = -1
        for index in range(len(steps) - 1, -1, -1):
            earlier = steps[index]
            w, h = earlier.geometry.size
            if (
                earlier.spec.fit == "inside"
                and earlier.geometry.size != base_size
                and w >= geo.scale[0] * MIN_DERIVE_RATIO
                and h >= geo.scale[1] * MIN_DERIVE_RATIO
            ):
                source = index
                break
        steps.append(Step(spec, geo, source))
    return steps


def render_each(
    base: Image.Image,
    specs: Sequence[RenditionSpec],
    width: int,
    height: int,
    executor: Executor | None = None,
) -> Iterator[tuple[Step, Image.Image]]:
    """Yield every spec's step and image, largest first, from ``base`` (a decode of the ``width`` x
    ``height`` source). Each intermediate is released after its last use, so that peak memory
    stays near the decoded base plus one rendition; the caller should hold no other
    reference to ``base``. With an ``executor``, large resizes run in two bands at once."""
    steps = plan(specs, width, height, base.size)
    last_use = {step.source: index for index, step in enumerate(steps)}
    pool: dict[int, Pixels] = {-1: VipsPixels.from_pillow(base) if base.mode in BANDS else base}
    del base
    for index, step in enumerate(steps):
        # Equal pixels as the step before (one size in several formats, adjacent since the
        # sort is stable): the same image again, not another resize.
        if not index or steps[index - 1].pixels_key != step.pixels_key:
            source = pool[step.source]
            pixels = _resize(source, step.geometry, width, height, executor)
            image = pixels.to_pillow() if isinstance(pixels, VipsPixels) else pixels
            del source
        if last_use.get(step.source) == index:
            del pool[step.source]
        if index in last_use:
            pool[index] = pixels
        yield step, image


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _resize(
    image: Pixels, geo: Geometry, width: int, height: int, executor: Executor | None
) -> Pixels:
    """Resize ``image`` (the whole ``width`` x ``height`` frame, at any scale) to ``geo``."""
    if geo.region is not None:
        fx, fy = image.width / width, image.height / height
        left, top, right, bottom = geo.region
        box = (left * fx, top * fy, right * fx, bottom * fy)
    elif image.size == geo.size:
        return image
    else:
        box = (0.0, 0.0, float(image.width), float(image.height))
    if _area(geo.size) < MIN_SPLIT_PIXELS or not has_idle_thread(executor):
        executor = None
    if isinstance(image, VipsPixels):
        return image.resized(geo.size, box, executor)
    if _area(image.size) > MAX_SPLIT_SOURCE_PIXELS:
        # One call, as Pillow's joint reduce() keeps a large source's intermediates small.
        return _lanczos(image, geo.size, box)
    # Two explicit passes, so that each can be cut into bands of rows: a horizontal pass
    # treats every row alone, and a vertical one (in Pillow) reads past its box's edges. They
    # run with or without bands, so that the bytes never depend on the pool.
    out_w, out_h = geo.size

    def horizontal(top: int, rows: int) -> Image.Image:
        whole = (top, rows) == (0, image.height)
        band = image if whole else image.crop((0, top, image.width, top + rows))
        return _lanczos(band, (out_w, rows), (box[0], 0.0, box[2], float(rows)))

    wide = _in_bands(image.height, executor, horizontal)
    scale = (box[3] - box[1]) / out_h

    def vertical(top: int, rows: int) -> Image.Image:
        band_box = (0.0, box[1] + top * scale, float(out_w), box[1] + (top + rows) * scale)
        return _lanczos(wide, (out_w, rows), band_box)

    return _in_bands(out_h, executor, vertical)


def _in_bands(
    rows: int, executor: Executor | None, band: Callable[[int, int], Image.Image]
) -> Image.Image:
    """``band(top, rows)`` for all ``rows`` at once, or as two bands, the upper one on the
    ``executor``, joined."""
    if executor is None:
        return band(0, rows)
    mid = rows // 2
    upper = executor.submit(band, 0, mid)
    lower = band(mid, rows - mid)
    joined = Image.new(lower.mode, (lower.width, rows))
    joined.paste(upper.result(), (0, 0))
    joined.paste(lower, (0, mid))
    return joined


def _lanczos(
    image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
