"""Rendition geometry (inside, cover, exact), the resize chain, and tiny or extreme-aspect input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging_fixtures import close, opened, pixel, to_bytes
from PIL import Image, ImageChops, ImageStat

from core.imaging import Limits, RenditionSpec
from core.imaging.engine import render
from core.imaging.resize import geometry, needed_scale
from loadtest.synthetic import photo_like_bytes

pytestmark = pytest.mark.usefixtures("pillow_globals")

ROOT = Path(__file__).resolve().parents[2]
RED, GREEN, BLUE = (230, 20, 20), (20, 200, 20), (20, 20, 230)


def spec(width: int, height: int, fit: str = "inside", name: str = "r") -> RenditionSpec:
    return RenditionSpec(name, width, height, fit, "png")


# --- geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        ((1000, 500), (200, 200), (200, 100)),
        ((500, 1000), (200, 200), (100, 200)),
        ((4000, 3000), (1920, 1080), (1440, 1080)),
        ((3000, 4000), (1280, 720), (540, 720)),
        ((50, 40), (200, 200), (50, 40)),  # never upscaled
        ((200, 100), (200, 200), (200, 100)),  # already fits
        ((1, 10_000), (200, 200), (1, 200)),  # never below one pixel
        ((10_000, 1), (640, 640), (640, 1)),
        ((1, 1), (1920, 1080), (1, 1)),
    ],
)
def test_inside(source: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]) -> None:
    assert geometry(spec(*box), *source).size == expected


@pytest.mark.parametrize(
    ("source", "box"),
    [
        ((1000, 500), (200, 200)),
        ((500, 1000), (200, 200)),
        ((10, 10), (200, 100)),
        ((7, 3), (5, 9)),
    ],
)
def test_cover_is_exactly_the_box(source: tuple[int, int], box: tuple[int, int]) -> None:
    """Only the size is checked here (not how it is reached); the centring is checked by
    sampling pixels below."""
    assert geometry(spec(*box, "cover"), *source).size == box


@pytest.mark.parametrize(("source", "box"), [((1000, 500), (300, 300)), ((2, 2), (640, 480))])
def test_exact(source: tuple[int, int], box: tuple[int, int]) -> None:
    assert geometry(spec(*box, "exact"), *source).size == box


def test_needed_scale_is_the_largest_fraction_and_at_most_one() -> None:
    specs = [spec(200, 200, "cover", "a"), spec(1920, 1080, "inside", "b")]
    assert needed_scale(specs, 4000, 3000) == pytest.approx(1440 / 4000)
    assert needed_scale(specs, 100, 100) == 1.0


# --- the resize chain ------------------------------------------------------------------------


CHAIN = [
    spec(200, 200, "cover", "thumb"),
    spec(640, 640, "inside", "mobile"),
    spec(1280, 720, "inside", "720p"),
    spec(300, 100, "exact", "strip"),
    spec(100, 100, "inside", "tiny"),
]


@pytest.fixture(scope="module")
def photo() -> bytes:
    return photo_like_bytes(1200, 800, seed=3, fmt="PNG")


def test_every_spec_gets_its_geometry(photo: bytes) -> None:
    result = render(photo, CHAIN, Limits())
    assert {r.name: (r.width, r.height) for r in result.renditions} == {
        "thumb": (200, 200),
        "mobile": (640, 427),
        "720p": (1080, 720),
        "strip": (300, 100),
        "tiny": (100, 67),
    }


@pytest.mark.parametrize("one", CHAIN, ids=lambda s: s.name)
def test_chained_renditions_look_like_direct_ones(photo: bytes, one: RenditionSpec) -> None:
    """Deriving a rendition from a larger one must stay visually the same as resizing the
    source directly (mean difference well under one level, no big local error)."""
    chained = {r.name: r for r in render(photo, CHAIN, Limits()).renditions}[one.name]
    direct = render(photo, [one], Limits()).renditions[0]
    a, b = opened(chained.data).convert("RGB"), opened(direct.data).convert("RGB")
    assert a.size == b.size
    diff = ImageChops.difference(a, b)
    assert max(ImageStat.Stat(diff).mean) < 1.0
    assert max(high for _, high in diff.getextrema()) < 40  # type: ignore[misc]


# --- pixels ----------------------------------------------------------------------------------


def bands(width: int, height: int, horizontal: bool = True) -> Image.Image:
    """Red, green, blue thirds: left to right, or top to bottom."""
    image = Image.new("RGB", (width, height))
    for i, colour in enumerate((RED, GREEN, BLUE)):
        if horizontal:
            image.paste(colour, (i * width // 3, 0, (i + 1) * width // 3, height))
        else:
            image.paste(colour, (0, i * height // 3, width, (i + 1) * height // 3))
    return image


@pytest.mark.parametrize("horizontal", [True, False])
@pytest.mark.parametrize("box", [(100, 100), (60, 60), (150, 150)])
def test_cover_keeps_the_centre(horizontal: bool, box: tuple[int, int]) -> None:
    source = bands(300, 100) if horizontal else bands(100, 300, horizontal=False)
    rendered = render(to_bytes(source, "PNG"), [spec(*box, "cover")], Limits())
    out = opened(rendered.renditions[0].data)
    assert out.size == box
    w, h = box
    for xy in [(w // 2, h // 2), (2, h // 2), (w - 3, h // 2), (w // 2, 2), (w // 2, h - 3)]:
        assert close(pixel(out, xy), GREEN, 16), xy


def test_inside_keeps_the_whole_frame() -> None:
    rendered = render(to_bytes(bands(300, 100), "PNG"), [spec(150, 150)], Limits())
    out = opened(rendered.renditions[0].data)
    assert out.size == (150, 50)
    assert close(pixel(out, (5, 25)), RED, 16)
    assert close(pixel(out, (75, 25)), GREEN, 16)
    assert close(pixel(out, (144, 25)), BLUE, 16)


def test_exact_stretches_the_whole_frame() -> None:
    rendered = render(to_bytes(bands(300, 100), "PNG"), [spec(60, 120, "exact")], Limits())
    out = opened(rendered.renditions[0].data)
    assert out.size == (60, 120)
    assert close(pixel(out, (3, 60)), RED, 16) and close(pixel(out, (56, 60)), BLUE, 16)


@pytest.mark.parametrize("fit", ["inside", "cover", "exact"])
def test_one_by_one_source(fit: str) -> None:
    data = to_bytes(Image.new("RGB", (1, 1), (90, 160, 30)), "PNG")
    rendered = render(data, [spec(200, 200, fit)], Limits())
    out = opened(rendered.renditions[0].data)
    assert out.size == ((1, 1) if fit == "inside" else (200, 200))
    assert close(pixel(out, (0, 0)), (90, 160, 30), 2)


@pytest.mark.parametrize("size", [(1, 10_000), (10_000, 1)])
def test_extreme_aspect_inside_and_exact(size: tuple[int, int]) -> None:
    data = to_bytes(Image.new("RGB", size, (90, 160, 30)), "PNG")
    specs = [
        RenditionSpec("mobile", 640, 640),
        RenditionSpec("1080p", 1920, 1080),
        RenditionSpec("square", 50, 50, "exact", "jpeg"),
    ]
    rendered = render(data, specs, Limits())
    long_side = {"mobile": 640, "1080p": 1080 if size[0] == 1 else 1920, "square": 50}
    for rendition in rendered.renditions:
        out = opened(rendition.data)
        assert out.size == (rendition.width, rendition.height)
        if rendition.name == "square":
            assert out.size == (50, 50)
        elif size[0] == 1:
            assert out.size == (1, long_side[rendition.name])
        else:
            assert out.size == (long_side[rendition.name], 1)
        assert close(pixel(out, (0, 0)), (90, 160, 30), 12)


# A cover rendition of a 1x10000 image must not allocate anywhere near 200 x 2,000,000 pixels.
_BOUNDED_RENDER = """
import io, json, resource, sys
from PIL import Image, ImageChops, ImageStat
from core.imaging import Limits, PRESETS
from core.imaging.engine import render
width, height = int(sys.argv[1]), int(sys.argv[2])
buffer = io.BytesIO()
Image.new("RGB", (width, height), (90, 160, 30)).save(buffer, "PNG")
cap = 1 << 30
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
result = render(buffer.getvalue(), PRESETS["default"], Limits())
print(json.dumps({r.name: [r.width, r.height] for r in result.renditions}))
"""


@pytest.mark.parametrize("size", [(1, 10_000), (10_000, 1)])
def test_extreme_aspect_default_preset_in_bounded_memory(size: tuple[int, int]) -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _BOUNDED_RENDER, *map(str, size)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    sizes = json.loads(run.stdout)
    assert sizes["thumb"] == [200, 200]
    assert sizes["mobile"] == ([1, 640] if size[0] == 1 else [640, 1])
