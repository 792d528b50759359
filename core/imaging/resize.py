"""Rendition geometry and the decode-once, largest-first resize chain."""

from collections.abc import Sequence
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


def render_all(
    base: Image.Image, specs: Sequence[RenditionSpec], width: int, height: int
) -> dict[str, Image.Image]:
    """Resize ``base`` (a decode of the ``width`` x ``height`` source) to every spec.

    Specs run largest first. Each ``inside`` result keeps the full frame and aspect, so it
    becomes a candidate source for the smaller ones that follow.
    """
    ordered = sorted(specs, key=lambda s: _area(geometry(s, width, height).resize), reverse=True)
    sources: list[Image.Image] = [base]
    results: dict[str, Image.Image] = {}
    for spec in ordered:
        geo = geometry(spec, width, height)
        source = _smallest_sufficient(sources, geo.resize)
        image = _resize(source, geo.resize)
        if geo.crop is not None:
            image = image.crop(geo.crop)
        elif spec.fit == "inside" and image is not source:
            sources.append(image)
        results[spec.name] = image
    return results


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _smallest_sufficient(sources: list[Image.Image], target: tuple[int, int]) -> Image.Image:
    for source in reversed(sources[1:]):  # derived sources are appended in shrinking order
        if source.width >= target[0] * MIN_DERIVE_RATIO and (
            source.height >= target[1] * MIN_DERIVE_RATIO
        ):
            return source
    return sources[0]


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
