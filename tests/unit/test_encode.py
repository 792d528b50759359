"""Output formats, content types, alpha handling, metadata stripping and the watermark."""

import subprocess
import sys
from typing import Any

import pytest
from imaging_fixtures import (
    SECRET_MAKE,
    close,
    opened,
    pixel,
    quadrants,
    to_bytes,
    with_metadata,
)
from PIL import Image, ImageChops

from core.imaging import Limits, RenditionSpec
from core.imaging.encode import OUTPUT_FORMATS, encode, output_format
from core.imaging.engine import render
from core.imaging.sniff import sniff_format
from core.imaging.watermark import apply_watermark

pytestmark = pytest.mark.usefixtures("pillow_globals")

OUTPUTS = ["webp", "avif", "jpeg", "png"]
PILLOW_NAME = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "extension", "content_type"),
    [
        ("webp", "webp", "image/webp"),
        ("avif", "avif", "image/avif"),
        ("jpeg", "jpg", "image/jpeg"),
        ("png", "png", "image/png"),
    ],
)
def test_output_formats_and_content_types(fmt: str, extension: str, content_type: str) -> None:
    spec = RenditionSpec("r", 32, 32, format=fmt)
    resolved = output_format(spec, "jpeg")
    assert (resolved.name, resolved.extension, resolved.content_type) == (
        fmt,
        extension,
        content_type,
    )
    rendered = render(to_bytes(quadrants(), "PNG"), [spec], Limits())
    rendition = rendered.renditions[0]
    assert (rendition.format, rendition.extension, rendition.content_type) == (
        fmt,
        extension,
        content_type,
    )
    assert opened(rendition.data).format == PILLOW_NAME[fmt]
    assert sniff_format(rendition.data) == PILLOW_NAME[fmt]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("GIF", "png"),
        ("HEIF", "jpeg"),
        ("AVIF", "avif"),
    ],
)
def test_format_source_maps_to_a_web_format(source: str, expected: str) -> None:
    data = to_bytes(quadrants(), source)
    spec = RenditionSpec("same", 32, 32, format="source")
    rendition = render(data, [spec], Limits()).renditions[0]
    assert rendition.format == expected
    assert rendition.content_type == OUTPUT_FORMATS[expected].content_type
    assert opened(rendition.data).format == PILLOW_NAME[expected]


def test_jpeg_is_progressive() -> None:
    data = encode(quadrants(), RenditionSpec("r", 1, 1, format="jpeg"), OUTPUT_FORMATS["jpeg"])
    assert opened(data).info.get("progressive")


@pytest.mark.parametrize("fmt", ["webp", "avif", "jpeg"])
def test_quality_changes_the_bytes(fmt: str) -> None:
    image = Image.effect_noise((96, 96), 40).convert("RGB")
    low = encode(image, RenditionSpec("r", 1, 1, format=fmt, quality=10), OUTPUT_FORMATS[fmt])
    high = encode(image, RenditionSpec("r", 1, 1, format=fmt, quality=95), OUTPUT_FORMATS[fmt])
    assert len(low) < len(high)


# --- alpha -----------------------------------------------------------------------------------


def half_transparent(width: int = 64, height: int = 64) -> Image.Image:
    """Left half fully transparent, right half opaque red."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.paste((230, 20, 20, 255), (width // 2, 0, width, height))
    return image


@pytest.mark.parametrize("background", ["#ffffff", "#00ff00", "#123456"])
@pytest.mark.parametrize("source_fmt", ["PNG", "WEBP", "AVIF"])
def test_alpha_is_flattened_onto_the_background_for_jpeg(source_fmt: str, background: str) -> None:
    data = to_bytes(
        half_transparent(), source_fmt, **({"lossless": True} if source_fmt == "WEBP" else {})
    )
    spec = RenditionSpec("r", 64, 64, format="jpeg", background=background)
    out = opened(render(data, [spec], Limits()).renditions[0].data)
    assert out.mode == "RGB"
    colour = spec.background_rgb
    assert close(pixel(out, (8, 32)), colour, 10)
    assert close(pixel(out, (56, 32)), (230, 20, 20), 16)


def test_translucent_pixels_blend_with_the_background() -> None:
    data = to_bytes(Image.new("RGBA", (16, 16), (255, 0, 0, 128)), "PNG")
    spec = RenditionSpec("r", 16, 16, format="jpeg", background="#0000ff")
    out = opened(render(data, [spec], Limits()).renditions[0].data)
    assert close(pixel(out, (8, 8)), (128, 0, 127), 12)


@pytest.mark.parametrize("fmt", ["webp", "png", "avif"])
@pytest.mark.parametrize("source_fmt", ["PNG", "WEBP", "GIF"])
def test_alpha_is_kept(fmt: str, source_fmt: str) -> None:
    image = half_transparent()
    options: dict[str, Any] = {"lossless": True} if source_fmt == "WEBP" else {}
    if source_fmt == "GIF":
        options = {"transparency": 0}
        image = Image.new("P", (64, 64), 0)
        image.putpalette([0, 0, 0, 230, 20, 20])
        image.paste(1, (32, 0, 64, 64))
    data = to_bytes(image, source_fmt, **options)
    out = opened(
        render(data, [RenditionSpec("r", 64, 64, format=fmt)], Limits()).renditions[0].data
    )
    assert out.mode in ("RGBA", "LA", "PA") or "transparency" in out.info
    rgba = out.convert("RGBA")
    assert rgba.getpixel((8, 32))[3] <= 8  # type: ignore[index]
    assert rgba.getpixel((56, 32))[3] >= 247  # type: ignore[index]
    assert close(rgba.getpixel((56, 32)), (230, 20, 20), 16)  # type: ignore[arg-type]


def test_opaque_input_gives_no_alpha_channel() -> None:
    out = opened(
        render(to_bytes(quadrants(), "PNG"), [RenditionSpec("r", 64, 64, format="png")], Limits())
        .renditions[0]
        .data
    )
    assert out.mode == "RGB"


# --- metadata --------------------------------------------------------------------------------

METADATA_SPECS = [RenditionSpec(f, 40, 40, format=f) for f in OUTPUTS] + [
    RenditionSpec("same", 300, 300, format="source"),  # no resize: the decoded image itself
    RenditionSpec("cover", 20, 20, fit="cover", format="jpeg"),
]


@pytest.mark.parametrize("source_fmt", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF"])
def test_outputs_carry_no_exif_gps_or_xmp(source_fmt: str) -> None:
    data = with_metadata(quadrants(64, 48), source_fmt, orientation=1)
    source = opened(data)
    assert source.getexif().get(0x010F) == SECRET_MAKE  # the input really has EXIF
    assert b"http://ns.adobe.com/xap" in data  # and XMP
    for rendition in render(data, METADATA_SPECS, Limits()).renditions:
        out = opened(rendition.data)
        assert dict(out.getexif()) == {}, rendition.name
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile"} & set(out.info)
        assert b"Exif\x00\x00" not in rendition.data
        assert SECRET_MAKE.encode() not in rendition.data
        assert b"http://ns.adobe.com/xap" not in rendition.data
        assert b"adobe:ns:meta" not in rendition.data


def test_watermarked_outputs_carry_no_metadata_either() -> None:
    data = with_metadata(quadrants(64, 48), "JPEG")
    spec = RenditionSpec("w", 64, 64, format="webp", watermark="imgpipe")
    rendition = render(data, [spec], Limits()).renditions[0]
    assert dict(opened(rendition.data).getexif()) == {}
    assert b"Exif" not in rendition.data and SECRET_MAKE.encode() not in rendition.data


# --- watermark -------------------------------------------------------------------------------


def grey(width: int, height: int) -> bytes:
    return to_bytes(Image.new("RGB", (width, height), (100, 110, 120)), "PNG")


def watermark_diff(data: bytes, width: int, height: int) -> tuple[int, int, int, int] | None:
    plain = RenditionSpec("p", width, height, "exact", "png")
    marked = RenditionSpec("m", width, height, "exact", "png", watermark="© imgpipe 2025")
    result = render(data, [plain, marked], Limits())
    a, b = (opened(r.data).convert("RGB") for r in result.renditions)
    return ImageChops.difference(a, b).getbbox()


def test_watermark_changes_only_the_bottom_right() -> None:
    box = watermark_diff(grey(400, 300), 400, 300)
    assert box is not None, "the watermark changed nothing"
    left, top, right, bottom = box
    assert left >= 400 // 3 and top >= 300 * 2 // 3
    assert right <= 400 and bottom <= 300


def test_watermark_scales_with_the_rendition() -> None:
    data = grey(1600, 1200)
    small = watermark_diff(data, 320, 240)
    large = watermark_diff(data, 1600, 1200)
    assert small is not None and large is not None
    small_w, small_h = small[2] - small[0], small[3] - small[1]
    large_w, large_h = large[2] - large[0], large[3] - large[1]
    assert large_w > 3 * small_w and large_h > 3 * small_h


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1), (8, 8)])
def test_watermark_on_tiny_images_does_not_fail(size: tuple[int, int]) -> None:
    spec = RenditionSpec("m", 300, 300, format="png", watermark="imgpipe")
    rendition = render(grey(*size), [spec], Limits()).renditions[0]
    assert opened(rendition.data).size == size


def test_watermark_keeps_alpha_and_mode() -> None:
    rgba = Image.new("RGBA", (200, 100), (10, 20, 30, 0))
    assert apply_watermark(rgba, "x").mode == "RGBA"
    assert apply_watermark(Image.new("RGB", (200, 100)), "x").mode == "RGB"


def test_same_rendition_with_and_without_watermark_differ() -> None:
    data = grey(640, 480)
    specs = [
        RenditionSpec("a", 640, 480, format="webp"),
        RenditionSpec("b", 640, 480, format="webp", watermark="imgpipe"),
    ]
    a, b = render(data, specs, Limits()).renditions
    assert a.data != b.data
    assert (a.width, a.height) == (b.width, b.height) == (640, 480)


def test_a_render_loads_only_the_plugins_of_the_allow_list() -> None:
    """Pillow imports all of its ~40 plugins (Image.init) when asked for a format it has not
    registered: decode.py and encode.py register theirs at import, so that never happens."""
    code = (
        "import io\n"
        "from PIL import Image\n"
        "from core.imaging import PRESETS, Limits\n"
        "from core.imaging.engine import render\n"
        "buffer = io.BytesIO()\n"
        "Image.new('RGB', (64, 48), 'red').save(buffer, 'JPEG')\n"
        "for preset in ('default', 'avif', 'jpeg'):\n"
        "    render(buffer.getvalue(), PRESETS[preset], Limits())\n"
        "print(Image._initialized)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"  # 2 once Image.init() has run
