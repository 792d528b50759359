"""The engine end to end: decode once, JPEG draft, every input kind, orientation by pixels."""

import importlib
import math
from dataclasses import dataclass
from typing import Any

import pytest
from imaging_fixtures import (
    QUADRANTS,
    animated,
    close,
    exif_bytes,
    image_of,
    opened,
    quadrant_samples,
    quadrants,
    stored_for_orientation,
    to_bytes,
)
from PIL import Image

from core.imaging import PRESETS, ImageRejected, Limits, RenditionSpec, parse_renditions
from core.imaging.decode import DecodedImage
from core.imaging.engine import render
from loadtest.synthetic import photo_like_bytes

pytestmark = pytest.mark.usefixtures("pillow_globals")

engine_module = importlib.import_module("core.imaging.engine")
DEFAULT = PRESETS["default"]


@dataclass(frozen=True)
class Decoded:
    """What the engine's decode returned: the oriented source size and the decoded size."""

    width: int
    height: int
    size: tuple[int, int]


def spy_decode(monkeypatch: pytest.MonkeyPatch) -> list[Decoded]:
    """Record every decode the engine makes (before the engine takes the pixels)."""
    seen: list[Decoded] = []
    real = engine_module.decode

    def wrapper(*args: Any, **kwargs: Any) -> DecodedImage:
        decoded: DecodedImage = real(*args, **kwargs)
        seen.append(Decoded(decoded.width, decoded.height, image_of(decoded).size))
        return decoded

    monkeypatch.setattr(engine_module, "decode", wrapper)
    return seen


# --- the result ------------------------------------------------------------------------------


def test_result_shape() -> None:
    data = to_bytes(quadrants(400, 300), "JPEG", quality=90)
    result = render(data, DEFAULT, Limits())
    assert (result.source.format, result.source.width, result.source.height) == ("jpeg", 400, 300)
    assert (result.source.bytes, result.source.frames) == (len(data), 1)
    assert [r.name for r in result.renditions] == ["thumb", "mobile", "720p", "1080p"]
    assert [(r.width, r.height) for r in result.renditions] == [
        (200, 200),
        (400, 300),
        (400, 300),
        (400, 300),
    ]
    for rendition in result.renditions:
        assert rendition.format == "webp" and rendition.content_type == "image/webp"
        assert opened(rendition.data).size == (rendition.width, rendition.height)
    assert set(result.timings_ms) == {"decode", "render", "encode"}
    assert all(v >= 0 for v in result.timings_ms.values())


def test_renditions_keep_the_spec_order_not_the_work_order() -> None:
    specs = [
        RenditionSpec("small", 10, 10),
        RenditionSpec("big", 90, 90),
        RenditionSpec("mid", 50, 50),
    ]
    result = render(to_bytes(quadrants(100, 100), "PNG"), specs, Limits())
    assert [(r.name, r.width) for r in result.renditions] == [
        ("small", 10),
        ("big", 90),
        ("mid", 50),
    ]


def test_rejections_surface_from_render() -> None:
    with pytest.raises(ImageRejected) as info:
        render(b"GIF89a nonsense", DEFAULT, Limits())
    assert info.value.reason == "corrupt"


def test_decodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opens = 0
    real_open = Image.open

    def counting_open(*args: Any, **kwargs: Any) -> Image.Image:
        nonlocal opens
        opens += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    seen = spy_decode(monkeypatch)
    render(to_bytes(quadrants(640, 480), "JPEG"), DEFAULT, Limits())
    assert opens == 1
    assert len(seen) == 1


def test_identical_renditions_are_encoded_once_and_agree() -> None:
    """On a small source, mobile, 720p and 1080p are all the source size."""
    result = render(to_bytes(quadrants(300, 200), "PNG"), DEFAULT, Limits())
    mobile, hd, full = result.renditions[1:]
    assert mobile.data == hd.data == full.data


# --- JPEG DCT scaling ------------------------------------------------------------------------


def big_jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    """Quadrants, stored for ``orientation``: built small, then scaled up by a whole factor."""
    small = quadrants(width // 100, height // 100)
    stored = stored_for_orientation(small, orientation) if orientation else small
    stored = stored.resize((stored.width * 100, stored.height * 100), Image.Resampling.NEAREST)
    exif = exif_bytes(orientation) if orientation else b""
    return to_bytes(stored, "JPEG", quality=85, exif=exif)


@pytest.fixture(scope="module")
def jpeg_4000x3000() -> bytes:
    return big_jpeg(4000, 3000)


def needed(specs: tuple[RenditionSpec, ...], width: int, height: int) -> tuple[int, int]:
    """The smallest decode that still serves every spec without upscaling (own arithmetic)."""
    scale = 0.0
    for s in specs:
        fit_scale = min if s.fit == "inside" else max
        scale = max(scale, min(1.0, fit_scale(s.width / width, s.height / height)))
    return math.floor(width * scale), math.floor(height * scale)


def test_jpeg_draft_default_preset(monkeypatch: pytest.MonkeyPatch, jpeg_4000x3000: bytes) -> None:
    seen = spy_decode(monkeypatch)
    result = render(jpeg_4000x3000, DEFAULT, Limits())
    (decoded,) = seen
    assert (decoded.width, decoded.height) == (4000, 3000)
    w, h = decoded.size
    need_w, need_h = needed(DEFAULT, 4000, 3000)
    assert (w, h) == (2000, 1500)  # DCT scale 1/2: the largest that still covers 1440x1080
    assert w < 4000 and h < 3000 and w >= need_w and h >= need_h
    assert [(r.name, r.width, r.height) for r in result.renditions] == [
        ("thumb", 200, 200),
        ("mobile", 640, 480),
        ("720p", 960, 720),
        ("1080p", 1440, 1080),
    ]
    for rendition in result.renditions:
        out = opened(rendition.data)
        assert out.size == (rendition.width, rendition.height)
        samples = quadrant_samples(out)
        for name, colour in QUADRANTS.items():
            assert close(samples[name], colour, 24), (rendition.name, name)


def test_jpeg_draft_thumbs_only_uses_an_eighth(
    monkeypatch: pytest.MonkeyPatch, jpeg_4000x3000: bytes
) -> None:
    seen = spy_decode(monkeypatch)
    result = render(jpeg_4000x3000, PRESETS["thumbs"], Limits())
    assert seen[0].size == (500, 375)
    assert (result.renditions[0].width, result.renditions[0].height) == (200, 200)


def test_jpeg_draft_never_goes_below_what_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    data = big_jpeg(2000, 1000)
    seen = spy_decode(monkeypatch)
    specs = (RenditionSpec("a", 1001, 1001),)  # needs 1001x500: a 1/2 decode is 1000x500
    result = render(data, specs, Limits())
    assert seen[0].size == (2000, 1000)
    assert (result.renditions[0].width, result.renditions[0].height) == (1001, 500)


def test_jpeg_draft_with_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored 4000x3000 with orientation 6: the upright image is 3000x4000."""
    data = big_jpeg(3000, 4000, orientation=6)
    seen = spy_decode(monkeypatch)
    result = render(data, DEFAULT, Limits())
    (decoded,) = seen
    assert (decoded.width, decoded.height) == (3000, 4000)
    w, h = decoded.size
    need_w, need_h = needed(DEFAULT, 3000, 4000)
    assert w < 3000 and h < 4000 and w >= need_w and h >= need_h
    assert [(r.width, r.height) for r in result.renditions] == [
        (200, 200),
        (480, 640),
        (540, 720),
        (810, 1080),
    ]
    samples = quadrant_samples(opened(result.renditions[-1].data))
    for name, colour in QUADRANTS.items():
        assert close(samples[name], colour, 24), name


def test_no_draft_for_a_small_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_decode(monkeypatch)
    render(to_bytes(quadrants(640, 480), "JPEG"), DEFAULT, Limits())
    assert seen[0].size == (640, 480)


# --- orientation, by pixels in the renditions ------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_orientation_in_renditions(fmt: str, orientation: int) -> None:
    reference = quadrants(96, 64)
    stored = stored_for_orientation(reference, orientation)
    data = to_bytes(stored, fmt, quality=95, exif=exif_bytes(orientation))
    specs = [
        RenditionSpec("inside", 48, 48, format="png"),
        RenditionSpec("cover", 40, 40, "cover", "jpeg"),
        RenditionSpec("exact", 30, 60, "exact", "webp"),
    ]
    result = render(data, specs, Limits())
    assert (result.source.width, result.source.height) == (96, 64)
    if fmt == "JPEG" and orientation >= 5:
        assert stored.size == (64, 96)  # the stored dimensions are swapped ...
    sizes = {r.name: (r.width, r.height) for r in result.renditions}
    assert sizes == {"inside": (48, 32), "cover": (40, 40), "exact": (30, 60)}  # ... not these
    for rendition in result.renditions:
        samples = quadrant_samples(opened(rendition.data))
        for name, colour in QUADRANTS.items():
            assert close(samples[name], colour, 28), (rendition.name, name, orientation)


# --- input kinds -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP", "PNG", "GIF", "JPEG"])
def test_every_input_format_renders(fmt: str) -> None:
    data = to_bytes(quadrants(320, 240), fmt)
    result = render(data, DEFAULT, Limits())
    assert result.source.format == fmt.lower()
    assert [(r.width, r.height) for r in result.renditions] == [
        (200, 200),
        (320, 240),
        (320, 240),
        (320, 240),
    ]
    samples = quadrant_samples(opened(result.renditions[1].data))
    for name, colour in QUADRANTS.items():
        assert close(samples[name], colour, 28), name


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
@pytest.mark.parametrize("output", ["webp", "png", "avif", "source"])
def test_animation_renders_its_first_frame_only(fmt: str, output: str) -> None:
    colours = [(230, 20, 20), (20, 20, 230), (20, 200, 20), (200, 200, 200)]
    data = animated(fmt, colours, size=(64, 48))
    result = render(data, [RenditionSpec("r", 32, 32, format=output)], Limits())
    assert result.source.frames == 4
    out = opened(result.renditions[0].data)
    assert getattr(out, "n_frames", 1) == 1
    assert not getattr(out, "is_animated", False)
    assert out.size == (32, 24)
    assert close(quadrant_samples(out)["tl"], colours[0], 16)


def test_one_by_one_default_preset() -> None:
    result = render(to_bytes(Image.new("RGB", (1, 1), (5, 150, 250)), "PNG"), DEFAULT, Limits())
    assert [(r.width, r.height) for r in result.renditions] == [(200, 200), (1, 1), (1, 1), (1, 1)]
    for rendition in result.renditions:
        assert close(opened(rendition.data).convert("RGB").getpixel((0, 0)), (5, 150, 250), 12)  # type: ignore[arg-type]


@pytest.mark.parametrize("preset", ["avif", "jpeg"])
def test_other_presets(preset: str) -> None:
    result = render(to_bytes(quadrants(800, 600), "PNG"), PRESETS[preset], Limits())
    assert {r.format for r in result.renditions} == {preset}
    assert [(r.width, r.height) for r in result.renditions] == [
        (200, 200),
        (640, 480),
        (800, 600),
        (800, 600),
    ]


def test_one_size_in_three_formats_is_resized_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The responsive preset: 12 renditions, 4 resizes; the keys differ only by extension."""
    calls: list[Any] = []
    resize_module = importlib.import_module("core.imaging.resize")
    resize = resize_module._resize

    def counting(image: Image.Image, geo: Any, *args: Any) -> Image.Image:
        calls.append(geo.size)
        return resize(image, geo, *args)

    monkeypatch.setattr(resize_module, "_resize", counting)
    data = photo_like_bytes(2400, 1600, seed=5)
    result = render(data, parse_renditions("responsive"), Limits())
    assert len(result.renditions) == 12 and len(calls) == 4, calls
    by_name: dict[str, set[str]] = {}
    for rendition in result.renditions:
        by_name.setdefault(rendition.name, set()).add(rendition.extension)
    assert by_name == {
        name: {"avif", "webp", "jpg"} for name in ("thumb", "mobile", "720p", "1080p")
    }
    assert result.placeholder is not None
