"""Property: any accepted image gives renditions within the spec bounds, decodable, in format."""

import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.imaging import ImageRejected, Limits, RenditionSpec
from core.imaging.engine import render
from core.imaging.resize import geometry

pytestmark = pytest.mark.usefixtures("pillow_globals")

PILLOW_NAME = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}
SOURCE_OUTPUT = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "png"}
INPUT_FORMATS = {
    "RGB": ["PNG", "JPEG", "WEBP", "GIF"],
    "RGBA": ["PNG", "WEBP"],
    "L": ["PNG", "JPEG", "GIF"],
    "P": ["PNG", "GIF"],
}


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, str, int, int]:
    width = draw(st.integers(1, 300), label="width")
    height = draw(st.integers(1, 300), label="height")
    mode = draw(st.sampled_from(sorted(INPUT_FORMATS)), label="mode")
    fmt = draw(st.sampled_from(INPUT_FORMATS[mode]), label="input format")
    seed = draw(st.integers(0, 2**16))
    # A smooth field plus noise: cheap, and not trivially compressible.
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 30 + seed % 50)
    rgb = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    if mode == "RGBA":
        image = rgb.convert("RGBA")
        image.putalpha(noise)
    elif mode == "P":
        image = rgb.quantize(16)
    else:
        image = rgb.convert(mode)
    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    image.save(buffer, fmt, **options)
    return buffer.getvalue(), fmt, width, height


@st.composite
def spec_lists(draw: st.DrawFn) -> list[RenditionSpec]:
    count = draw(st.integers(1, 3))
    return [
        RenditionSpec(
            name=f"r{i}",
            width=draw(st.integers(1, 256)),
            height=draw(st.integers(1, 256)),
            fit=draw(st.sampled_from(["inside", "cover", "exact"])),
            format=draw(st.sampled_from(["webp", "avif", "jpeg", "png", "source"])),
            watermark=draw(st.none() | st.just("imgpipe")),
        )
        for i in range(count)
    ]


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(source=images(), specs=spec_lists())
def test_renditions_stay_within_the_spec(
    source: tuple[bytes, str, int, int], specs: list[RenditionSpec]
) -> None:
    data, fmt, width, height = source
    try:
        result = render(data, specs, Limits())
    except ImageRejected as exc:  # pragma: no cover - every generated image is valid
        raise AssertionError(f"a valid {fmt} {width}x{height} was rejected: {exc}") from exc
    assert (result.source.width, result.source.height) == (width, height)
    assert [r.name for r in result.renditions] == [s.name for s in specs]
    for spec, rendition in zip(specs, result.renditions, strict=True):
        w, h = rendition.width, rendition.height
        if spec.fit == "inside":
            assert 1 <= w <= min(spec.width, width) and 1 <= h <= min(spec.height, height)
            # As large as allowed: the source size, or touching the box on one side.
            assert (w, h) == (width, height) or w == spec.width or h == spec.height
        else:
            assert (w, h) == (spec.width, spec.height)
        expected = SOURCE_OUTPUT[fmt] if spec.format == "source" else spec.format
        assert rendition.format == expected
        out = Image.open(io.BytesIO(rendition.data))
        out.load()
        assert out.format == PILLOW_NAME[expected]
        assert out.size == (w, h)
        assert getattr(out, "n_frames", 1) == 1
        if expected == "jpeg":
            assert out.mode in ("RGB", "L")


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 20_000),
    height=st.integers(1, 20_000),
    box_w=st.integers(1, 16_384),
    box_h=st.integers(1, 16_384),
    fit=st.sampled_from(["inside", "cover", "exact"]),
)
def test_geometry_bounds(width: int, height: int, box_w: int, box_h: int, fit: str) -> None:
    geo = geometry(RenditionSpec("g", box_w, box_h, fit), width, height)
    w, h = geo.size
    if fit == "inside":
        assert 1 <= w <= min(box_w, width) and 1 <= h <= min(box_h, height)
        assert (w, h) == (width, height) or w == box_w or h == box_h
    else:
        assert (w, h) == (box_w, box_h)
