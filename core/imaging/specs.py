"""Rendition specs, the presets, and strict parsing of ``IMGPIPE_RENDITIONS``."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

FITS: Final = ("inside", "cover", "exact")
FORMATS: Final = ("webp", "avif", "jpeg", "png", "source")
MAX_DIMENSION: Final = 16384
DEFAULT_QUALITY: Final = {"webp": 80, "avif": 60, "jpeg": 82, "png": 100, "source": 82}
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_COLOUR_RE: Final = re.compile(r"^#[0-9a-fA-F]{6}$")


class SpecError(ValueError):
    """An invalid rendition spec; the message names the offending field."""


@dataclass(frozen=True)
class RenditionSpec:
    name: str
    width: int
    height: int
    fit: str = "inside"
    format: str = "webp"
    quality: int | None = None
    watermark: str | None = None
    background: str = "#ffffff"

    @property
    def effective_quality(self) -> int:
        return self.quality if self.quality is not None else DEFAULT_QUALITY[self.format]

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        value = int(self.background[1:], 16)
        return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


_DEFAULT: Final = (
    RenditionSpec("thumb", 200, 200, "cover"),
    RenditionSpec("mobile", 640, 640),
    RenditionSpec("720p", 1280, 720),
    RenditionSpec("1080p", 1920, 1080),
)

# For <picture>-free delivery: each size in the three formats, under one name, so that the
# keys differ only by extension and the CDN's negotiate function picks one for ".auto".
RESPONSIVE_FORMATS: Final = ("avif", "webp", "jpeg")

PRESETS: Final[Mapping[str, tuple[RenditionSpec, ...]]] = {
    "default": _DEFAULT,
    "avif": tuple(replace(s, format="avif") for s in _DEFAULT),
    "jpeg": tuple(replace(s, format="jpeg") for s in _DEFAULT),
    "thumbs": (_DEFAULT[0],),
    "responsive": tuple(replace(s, format=f) for s in _DEFAULT for f in RESPONSIVE_FORMATS),
}


def parse_renditions(value: str | None) -> tuple[RenditionSpec, ...]:
    """Parse a preset name or a JSON list of specs. Raises SpecError naming the bad field."""
    text = (value or "default").strip()
    if not text.startswith("["):
        if text not in PRESETS:
            raise SpecError(
                f"IMGPIPE_RENDITIONS: unknown preset {text!r}; "
                f"use one of {', '.join(PRESETS)} or a JSON list of specs"
            )
        return PRESETS[text]
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"IMGPIPE_RENDITIONS: invalid JSON: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise SpecError("IMGPIPE_RENDITIONS: expected a non-empty JSON list of specs")
    specs = tuple(_parse_one(item, f"renditions[{i}]") for i, item in enumerate(raw))
    _check_names(specs)
    return specs


def _check_names(specs: tuple[RenditionSpec, ...]) -> None:
    """A name may repeat only with distinct explicit formats (one size in several formats:
    their keys differ by extension); ``source`` could resolve to any of them."""
    formats: dict[str, list[str]] = {}
    for spec in specs:
        formats.setdefault(spec.name, []).append(spec.format)
    duplicates = sorted(
        name
        for name, used in formats.items()
        if len(used) > 1 and (len(set(used)) < len(used) or "source" in used)
    )
    if duplicates:
        raise SpecError(
            f"renditions: duplicate name(s) {', '.join(duplicates)} "
            "(a name may repeat only with distinct formats other than source)"
        )


def _parse_one(item: Any, where: str) -> RenditionSpec:
    if not isinstance(item, dict):
        raise SpecError(f"{where}: expected an object")
    known = {"name", "width", "height", "fit", "format", "quality", "watermark", "background"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SpecError(f"{where}.name: must be 1-63 letters, digits, '_' or '-'")
    width = _dimension(item, "width", f"{where}.width")
    height = _dimension(item, "height", f"{where}.height")
    fit = item.get("fit", "inside")
    if fit not in FITS:
        raise SpecError(f"{where}.fit: must be one of {', '.join(FITS)}")
    fmt = item.get("format", "webp")
    if fmt not in FORMATS:
        raise SpecError(f"{where}.format: must be one of {', '.join(FORMATS)}")
    quality = item.get("quality")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        raise SpecError(f"{where}.quality: must be an integer from 1 to 100")
    watermark = item.get("watermark")
    if watermark is not None and (not isinstance(watermark, str) or not 0 < len(watermark) <= 200):
        raise SpecError(f"{where}.watermark: must be a string of 1-200 characters")
    background = item.get("background", "#ffffff")
    if not isinstance(background, str) or not _COLOUR_RE.match(background):
        raise SpecError(f"{where}.background: must be a colour like '#ffffff'")
    return RenditionSpec(name, width, height, fit, fmt, quality, watermark, background)


def _dimension(item: Mapping[str, Any], key: str, where: str) -> int:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
        raise SpecError(f"{where}: must be an integer from 1 to {MAX_DIMENSION}")
    return value
