"""Rendition geometry and the decode-once, largest-first resize chain."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from core.imaging.specs import RenditionSpec

# Pillow first reduces by an integer factor with a box filter while the image stays at least
# this many times the target, then finishes with LANCZOS: close to a full LANCZOS, much faster.
REDUCING_GAP = 2.0
# A rendition is derived from an earlier, larger full-frame rendition only when that one is at
# least this many times the target size, so the second LANCZOS pass stays visually lossless.
MIN_DERIVE_RATIO = 1.0


@dataclass(frozen=True)
class Geometry:
    """Where a spec lands for a given source: the resize size, then an optional centre crop."""

    resize: tuple[int, int]
    crop: tuple[int, int, int, int] | None

    @property
    def size(self) -> tuple[int, int]:
        if self.crop is None:
            return self.resize
        left, top, right, bottom = self.crop
        return right - left, bottom - top


def geometry(spec: RenditionSpec, width: int, height: int) -> Geometry:
    """Output geometry of ``spec`` on a ``width`` x ``height`` source (orientation applied)."""
    if spec.fit == "exact":
        return Geometry((spec.width, spec.height), None)
    if spec.fit == "inside":
        scale = min(spec.width / width, spec.height / height, 1.0)
        return Geometry(_scaled(width, height, scale), None)
    scale = max(spec.width / width, spec.height / height)
    rw, rh = _scaled(width, height, scale)
    rw, rh = max(rw, spec.width), max(rh, spec.height)
    left, top = (rw - spec.width) // 2, (rh - spec.height) // 2
    return Geometry((rw, rh), (left, top, left + spec.width, top + spec.height))


def needed_scale(specs: Sequence[RenditionSpec], width: int, height: int) -> float:
    """The largest fraction of the source that any spec needs (for JPEG DCT scaling)."""
    scale = 0.0
    for spec in specs:
        rw, rh = geometry(spec, width, height).resize
        scale = max(scale, rw / width, rh / height)
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
    ordered = sorted(specs, key=lambda s: _area(geometry(s, width, height).resize), reverse=True)
    steps: list[Step] = []
    for spec in ordered:
        geo = geometry(spec, width, height)
        source = -1
        for index in range(len(steps) - 1, -1, -1):
            earlier = steps[index]
            w, h = earlier.geometry.size
            if (
                earlier.spec.fit == "inside"
                and earlier.geometry.resize != base_size
                and w >= geo.resize[0] * MIN_DERIVE_RATIO
                and h >= geo.resize[1] * MIN_DERIVE_RATIO
            ):
                source = index
                break
        steps.append(Step(spec, geo, source))
    return steps


def render_each(
    base: Image.Image, specs: Sequence[RenditionSpec], width: int, height: int
) -> Iterator[tuple[Step, Image.Image]]:
    """Yield every spec's step and image, largest first, from ``base`` (a decode of the ``width`` x
    ``height`` source). Each intermediate is released after its last use, so that peak memory
    stays near the decoded base plus one rendition; the caller should hold no other
    reference to ``base``."""
    steps = plan(specs, width, height, base.size)
    last_use = {step.source: index for index, step in enumerate(steps)}
    pool: dict[int, Image.Image] = {-1: base}
    del base
    for index, step in enumerate(steps):
        source = pool[step.source]
        image = _resize(source, step.geometry.resize)
        del source
        if last_use.get(step.source) == index:
            del pool[step.source]
        if step.geometry.crop is not None:
            image = image.crop(step.geometry.crop)
        if index in last_use:
            pool[index] = image
        yield step, image


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
