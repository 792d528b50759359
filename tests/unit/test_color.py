"""Colour normalisation: ICC to sRGB, CMYK, 16-bit, alpha and palette modes, and the ICC helper."""

import io
import struct

import icc
import pytest
from imaging_fixtures import close, image_of, pixel, png_rgb16, to_bytes
from PIL import Image, ImageCms

from core.imaging import Limits
from core.imaging.color import to_srgb8
from core.imaging.decode import decode

pytestmark = pytest.mark.usefixtures("pillow_globals")

SRGB = ImageCms.createProfile("sRGB")
SAMPLES = [(200, 100, 100), (100, 180, 100), (30, 60, 200), (128, 128, 128), (250, 240, 10)]


def decoded_pixel(data: bytes, xy: tuple[int, int] = (4, 4)) -> tuple[int, ...]:
    value = image_of(decode(data, Limits())).getpixel(xy)
    assert isinstance(value, tuple)
    return value


# --- the ICC helper itself -------------------------------------------------------------------


@pytest.mark.parametrize("space", [icc.DISPLAY_P3, icc.ADOBE_RGB, icc.SRGB], ids=lambda s: s.name)
def test_built_profile_loads_and_transforms_like_the_arithmetic(space: icc.RGBSpace) -> None:
    data = icc.build_profile(space)
    assert struct.unpack(">I", data[:4])[0] == len(data)
    assert data[36:40] == b"acsp" and data[8:10] == b"\x02\x10"  # ICC v2.1
    profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    assert ImageCms.getProfileDescription(profile).strip() == space.name
    transform = ImageCms.buildTransform(
        profile, SRGB, "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
    )
    for colour in [*SAMPLES, (255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0)]:
        converted = ImageCms.applyTransform(Image.new("RGB", (1, 1), colour), transform)
        assert converted is not None
        assert close(pixel(converted, (0, 0)), icc.reference_to_srgb(space, colour), 2), colour


def test_srgb_built_in_code_is_the_identity() -> None:
    for colour in SAMPLES:
        assert close(icc.reference_to_srgb(icc.SRGB, colour), colour, 1)


def test_wide_gamut_reference_points_the_expected_way() -> None:
    """A P3 or Adobe RGB colour is more saturated than the same numbers read as sRGB."""
    red, green, _ = icc.reference_to_srgb(icc.DISPLAY_P3, (200, 100, 100))
    assert red > 200 and green < 100
    red, green, _ = icc.reference_to_srgb(icc.ADOBE_RGB, (100, 180, 100))
    assert green >= 180 and red < 100


# --- ICC-tagged input is converted to sRGB ---------------------------------------------------


@pytest.mark.parametrize("space", [icc.DISPLAY_P3, icc.ADOBE_RGB], ids=lambda s: s.name)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF", "HEIF"])
def test_icc_tagged_input_becomes_srgb(fmt: str, space: icc.RGBSpace) -> None:
    profile = icc.build_profile(space)
    colour = (200, 100, 100)
    options = {"PNG": {}, "HEIF": {"quality": -1}}.get(fmt, {"quality": 100})
    tagged = to_bytes(Image.new("RGB", (8, 8), colour), fmt, icc_profile=profile, **options)
    untagged = to_bytes(Image.new("RGB", (8, 8), colour), fmt, **options)
    expected = icc.reference_to_srgb(space, colour)
    got = decoded_pixel(tagged)
    plain = decoded_pixel(untagged)
    assert close(got, expected, 4), (got, expected)
    assert close(plain, colour, 4)
    assert got[0] > plain[0] + 8, "the red of a wide-gamut colour gets more saturated in sRGB"
    assert got[1] <= plain[1]


def test_saturated_p3_red_is_clipped_to_srgb_red() -> None:
    data = to_bytes(Image.new("RGB", (8, 8), (255, 0, 0)), "PNG", icc_profile=icc.display_p3())
    assert close(decoded_pixel(data), (255, 0, 0), 2)


def test_p3_rgba_keeps_its_alpha() -> None:
    image = Image.new("RGBA", (8, 8), (200, 100, 100, 128))
    decoded = image_of(decode(to_bytes(image, "PNG", icc_profile=icc.display_p3()), Limits()))
    assert decoded.mode == "RGBA"
    got = decoded.getpixel((4, 4))
    assert isinstance(got, tuple)
    assert close(got, (*icc.reference_to_srgb(icc.DISPLAY_P3, (200, 100, 100)), 128), 3)


def test_srgb_tagged_input_is_unchanged() -> None:
    srgb = ImageCms.ImageCmsProfile(SRGB).tobytes()
    data = to_bytes(Image.new("RGB", (8, 8), (200, 100, 100)), "PNG", icc_profile=srgb)
    assert close(decoded_pixel(data), (200, 100, 100), 1)


def test_broken_icc_profile_is_ignored_not_fatal() -> None:
    data = to_bytes(Image.new("RGB", (8, 8), (200, 100, 100)), "PNG", icc_profile=b"nonsense")
    assert close(decoded_pixel(data), (200, 100, 100), 1)


# --- CMYK ------------------------------------------------------------------------------------


# What libvips 8.18 gives for these patches through its own fallback CMYK profile (pyvips
# ``icc_transform("srgb", input_profile="cmyk")``, measured 2026-12-02): an independent
# colour-managed reading of the same numbers. Pillow's naive formula is up to 122 levels away
# (cyan (0, 255, 255), magenta (255, 0, 255), 100 % K (0, 0, 0)); the bundled SWOP profile is
# within 23 of libvips, whose profile models a different press.
LIBVIPS_CMYK = [
    ((255, 0, 0, 0), (0, 156, 228)),
    ((0, 255, 0, 0), (234, 23, 133)),
    ((0, 0, 255, 0), (255, 240, 0)),
    ((0, 0, 0, 255), (41, 35, 43)),
    ((0, 255, 255, 0), (232, 31, 42)),
    ((255, 0, 255, 0), (0, 143, 63)),
    ((255, 255, 0, 0), (48, 36, 123)),
    ((0, 0, 0, 128), (137, 136, 137)),
    ((64, 32, 16, 8), (175, 190, 209)),
]


@pytest.mark.parametrize(("cmyk", "rgb"), LIBVIPS_CMYK)
def test_cmyk_jpeg_without_a_profile_is_colour_managed(
    cmyk: tuple[int, int, int, int], rgb: tuple[int, int, int]
) -> None:
    data = to_bytes(Image.new("CMYK", (16, 16), cmyk), "JPEG", quality=95)
    decoded = decode(data, Limits())
    assert image_of(decoded).mode == "RGB"
    assert close(pixel(image_of(decoded), (8, 8)), rgb, 25)


def test_cmyk_white_stays_white_and_full_ink_stays_dark() -> None:
    white = to_bytes(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), "JPEG", quality=95)
    assert close(decoded_pixel(white, (8, 8)), (255, 255, 255), 2)
    ink = to_bytes(Image.new("CMYK", (16, 16), (255, 255, 255, 255)), "JPEG", quality=95)
    assert max(decoded_pixel(ink, (8, 8))) <= 8


@pytest.mark.parametrize(
    "icc",
    [b"nonsense", ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()],
    ids=["broken", "rgb-profile"],
)
def test_cmyk_with_an_unusable_profile_gets_the_default(icc: bytes) -> None:
    """A broken profile, or one for another colour space, is as good as none."""
    image = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    plain = decoded_pixel(to_bytes(image, "JPEG", quality=95), (8, 8))
    tagged = decoded_pixel(to_bytes(image, "JPEG", quality=95, icc_profile=icc), (8, 8))
    assert plain == tagged
    assert close(tagged, (0, 156, 228), 25)


# --- 16-bit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0), (32768, 128), (65535, 255), (16384, 64), (49152, 191)]
)
def test_16bit_grey_png_is_scaled_not_clipped(value: int, expected: int) -> None:
    data = to_bytes(Image.new("I;16", (4, 4), value), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert close(decoded_pixel(data, (1, 1)), (expected,) * 3, 1)


def test_16bit_grey_gradient_stays_a_gradient() -> None:
    image = Image.new("I;16", (256, 1))
    for x in range(256):
        image.putpixel((x, 0), x * 257)
    decoded = image_of(decode(to_bytes(image, "PNG"), Limits()))
    values = [pixel(decoded, (x, 0))[0] for x in range(256)]
    assert values == sorted(values)
    assert values[0] <= 1 and values[-1] >= 254
    assert all(abs(v - x) <= 1 for x, v in enumerate(values))


def test_dark_16bit_grey_png_stays_dark() -> None:
    data = to_bytes(Image.new("I;16", (4, 4), 255), "PNG")  # 255/65535: almost black
    assert close(decoded_pixel(data, (1, 1)), (0, 0, 0), 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [((32768, 16384, 65535), (128, 64, 255)), ((65535, 0, 0), (255, 0, 0)), ((0,) * 3, (0,) * 3)],
)
def test_16bit_rgb_png_is_scaled(
    value: tuple[int, int, int], expected: tuple[int, int, int]
) -> None:
    data = png_rgb16(4, 4, value)
    assert Image.open(io.BytesIO(data)).mode == "RGB"  # Pillow reads it (at 8 bits)
    assert close(decoded_pixel(data, (1, 1)), expected, 1)


def test_mode_i_is_scaled_too() -> None:
    image = Image.new("I", (2, 1))
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 32768)
    out = to_srgb8(image)
    assert out.mode == "RGB"
    assert close(pixel(out, (0, 0)), (255,) * 3, 1) and close(pixel(out, (1, 0)), (128,) * 3, 1)


# --- modes and alpha -------------------------------------------------------------------------


def test_opaque_rgba_becomes_rgb() -> None:
    data = to_bytes(Image.new("RGBA", (4, 4), (10, 20, 30, 255)), "PNG")
    assert image_of(decode(data, Limits())).mode == "RGB"


def test_translucent_rgba_stays_rgba() -> None:
    data = to_bytes(Image.new("RGBA", (4, 4), (10, 20, 30, 100)), "PNG")
    decoded = image_of(decode(data, Limits()))
    assert decoded.mode == "RGBA" and decoded.getpixel((1, 1)) == (10, 20, 30, 100)


@pytest.mark.parametrize(
    ("image", "options", "mode", "probe"),
    [
        (Image.new("1", (4, 4), 1), {}, "RGB", (255, 255, 255)),
        (Image.new("L", (4, 4), 77), {}, "RGB", (77, 77, 77)),
        (Image.new("LA", (4, 4), (77, 0)), {}, "RGBA", (77, 77, 77, 0)),
        (Image.new("L", (4, 4), 7), {"transparency": 7}, "RGBA", (7, 7, 7, 0)),
        (Image.new("P", (4, 4), 0), {}, "RGB", (0, 0, 0)),
        (Image.new("P", (4, 4), 0), {"transparency": 0}, "RGBA", (0, 0, 0, 0)),
    ],
    ids=["1", "L", "LA", "L+tRNS", "P", "P+tRNS"],
)
def test_png_modes(
    image: Image.Image, options: dict[str, int], mode: str, probe: tuple[int, ...]
) -> None:
    decoded = image_of(decode(to_bytes(image, "PNG", **options), Limits()))
    assert decoded.mode == mode
    assert decoded.getpixel((1, 1)) == probe


def test_rgb_png_colour_key_transparency_is_kept() -> None:
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    image.putpixel((0, 0), (200, 200, 200))
    decoded = image_of(decode(to_bytes(image, "PNG", transparency=(10, 20, 30)), Limits()))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((1, 1)) == (10, 20, 30, 0)
    assert decoded.getpixel((0, 0)) == (200, 200, 200, 255)


def test_gif_transparency_becomes_alpha() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 200, 10, 10])
    image.putpixel((0, 0), 0)
    decoded = image_of(decode(to_bytes(image, "GIF", transparency=0), Limits()))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert decoded.getpixel((2, 2)) == (200, 10, 10, 255)


def test_to_srgb8_drops_every_info_key() -> None:
    image = Image.new("RGB", (2, 2))
    image.info.update(
        {"exif": b"Exif\x00\x00", "xmp": b"<x/>", "icc_profile": b"", "dpi": (72, 72)}
    )
    assert to_srgb8(image).info == {}


# --- greyscale ICC profiles ------------------------------------------------------------------


def grey_profile(gamma: float) -> bytes:
    """An ICC v2 monitor-class greyscale profile with a pure-gamma ``kTRC`` (made here)."""

    def s15f16(*values: float) -> bytes:
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    d50 = (0.9642, 1.0, 0.8249)
    text = b"linear grey\0"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)),
        (b"cprt", b"text" + bytes(4) + b"No copyright: generated by the imgpipe tests\0"),
        (b"wtpt", b"XYZ " + bytes(4) + s15f16(*d50)),
        (b"kTRC", b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))),
    ]
    offset, entries, body = 128 + 4 + 12 * len(tags), b"", b""
    for signature, data in tags:
        entries += struct.pack(">4sII", signature, offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = offset + len(body)
    header = struct.pack(">I4sI", size, b"lcms", 0x02100000) + b"mntrGRAYXYZ "
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(32) + s15f16(*d50)
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + entries + body


def test_grey_profile_is_a_valid_icc_profile() -> None:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(grey_profile(1.0)))
    assert ImageCms.getProfileDescription(profile).strip() == "linear grey"


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_greyscale_icc_profile_is_honoured(mode: str) -> None:
    """Linear grey 128 is 50% light, which sRGB encodes as 188 (IEC 61966-2-1)."""
    image = Image.new(mode, (8, 8), 128 if mode == "L" else (128, 100))
    data = to_bytes(image, "PNG", icc_profile=grey_profile(1.0))
    result = image_of(decode(data, Limits()))
    assert result.mode == ("RGB" if mode == "L" else "RGBA")
    value = result.getpixel((4, 4))
    assert isinstance(value, tuple)
    assert close(value, (188, 188, 188), 2)
    if mode == "LA":
        assert value[3] == 100


def test_greyscale_profile_keeps_a_trns_key() -> None:
    image = Image.new("L", (8, 1), 128)
    image.putpixel((0, 0), 7)
    data = to_bytes(image, "PNG", icc_profile=grey_profile(1.0), transparency=7)
    result = image_of(decode(data, Limits()))
    assert result.mode == "RGBA"
    assert result.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert result.getpixel((4, 0))[3] == 255  # type: ignore[index]


def test_greyscale_jpeg_with_a_grey_profile_is_converted() -> None:
    data = to_bytes(
        Image.new("L", (16, 16), 128), "JPEG", quality=95, icc_profile=grey_profile(1.0)
    )
    assert close(decoded_pixel(data), (188, 188, 188), 3)
