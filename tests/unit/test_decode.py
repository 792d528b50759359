"""Safe decode: every reject reason, limits checked from headers, first frame only, orientation."""

import importlib
import tracemalloc
from collections.abc import Callable

import pytest
from imaging_fixtures import (
    QUADRANTS,
    animated,
    close,
    exif_bytes,
    ftyp,
    image_of,
    many_frame_gif,
    quadrant_samples,
    quadrants,
    raw_png,
    stored_for_orientation,
    to_bytes,
)
from PIL import Image, ImageFile

from core.imaging import REJECT_REASONS, ImageRejected, Limits
from core.imaging.decode import decode

# ``core.imaging.decode`` the attribute is the function; the module is needed to patch it.
decode_module = importlib.import_module("core.imaging.decode")

pytestmark = [
    pytest.mark.usefixtures("pillow_globals"),
    # As in production (decode.py turns it into an error at import; pytest resets filters).
    pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning"),
]

FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF"]


def reason(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(ImageRejected) as info:
        decode(data, limits or Limits())
    assert info.value.reason in REJECT_REASONS
    return info.value.reason


def noisy(width: int = 96, height: int = 64) -> Image.Image:
    """Incompressible pixels, so that a cut lands in the middle of the image data."""
    return Image.effect_noise((width, height), 80).convert("RGB")


# --- one case per reject reason; the last test checks that all of them are covered ----------


def _too_large() -> tuple[bytes, Limits]:
    return to_bytes(quadrants(), "PNG"), Limits(max_bytes=100)


def _unsupported() -> tuple[bytes, Limits]:
    return to_bytes(quadrants(), "BMP"), Limits()


def _corrupt() -> tuple[bytes, Limits]:
    data = to_bytes(noisy(), "JPEG")
    return data[: len(data) // 2], Limits()


def _pixels() -> tuple[bytes, Limits]:
    return raw_png(20_000, 20_000, b"\x00" * 64), Limits()


def _frames() -> tuple[bytes, Limits]:
    return many_frame_gif(1001), Limits()


REASON_CASES: dict[str, Callable[[], tuple[bytes, Limits]]] = {
    "empty": lambda: (b"", Limits()),
    "too_large": _too_large,
    "unsupported_format": _unsupported,
    "corrupt": _corrupt,
    "too_many_pixels": _pixels,
    "too_many_frames": _frames,
}


@pytest.mark.parametrize("expected", list(REASON_CASES))
def test_each_reason_code(expected: str) -> None:
    data, limits = REASON_CASES[expected]()
    with pytest.raises(ImageRejected) as info:
        decode(data, limits)
    assert info.value.reason == expected
    assert str(info.value).startswith(expected)


def test_every_reason_code_has_a_case() -> None:
    assert set(REASON_CASES) == set(REJECT_REASONS)


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown reject reason"):
        ImageRejected("exploded")


# --- empty and too_large ---------------------------------------------------------------------


def test_empty() -> None:
    assert reason(b"") == "empty"


def test_byte_limit_is_checked_before_anything_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_sniff(data: bytes) -> str:
        raise AssertionError("sniffed an oversized input")

    monkeypatch.setattr(decode_module, "sniff_format", must_not_sniff)
    assert reason(b"not even an image" * 10, Limits(max_bytes=169)) == "too_large"


def test_byte_limit_is_inclusive() -> None:
    data = to_bytes(quadrants(), "PNG")
    assert decode(data, Limits(max_bytes=len(data))).width == 48
    assert reason(data, Limits(max_bytes=len(data) - 1)) == "too_large"


# --- unsupported_format ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, although the upload was called cat.jpg\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        ftyp(b"isom", b"mp41") + bytes(64),
    ],
    ids=["text", "svg", "pdf", "mp4"],
)
def test_not_an_image(data: bytes) -> None:
    assert reason(data) == "unsupported_format"


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM", "JPEG2000"])
def test_decodable_by_pillow_but_not_allowed(fmt: str) -> None:
    assert reason(to_bytes(quadrants(), fmt)) == "unsupported_format"


# --- corrupt ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_is_corrupt(fmt: str, keep: float) -> None:
    frame = noisy()
    data = to_bytes(frame.convert("P") if fmt == "GIF" else frame, fmt)
    assert reason(data[: int(len(data) * keep)]) == "corrupt"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "magic",
    [
        b"\xff\xd8\xff\xe0",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a\x10\x00\x10\x00\x00\x00\x00\x99",  # a 16x16 screen, then no valid block
        b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        ftyp(b"heic", b"mif1", b"heic"),
        ftyp(b"avif", b"mif1", b"miaf"),
    ],
    ids=["jpeg", "png", "gif", "webp", "heic", "avif"],
)
def test_garbage_after_valid_magic_is_corrupt(magic: bytes) -> None:
    # No GIF block introducers (",", "!", ";"): Pillow would read a huge frame out of them.
    garbage = bytes(b for i in range(2048) if (b := (i * 97 + 13) % 256) not in b",!;")
    assert reason(magic + garbage) == "corrupt"


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_zero_sized_png_header_is_corrupt(size: tuple[int, int]) -> None:
    assert reason(raw_png(*size, b"")) == "corrupt"


# --- too_many_pixels -------------------------------------------------------------------------


def _assert_cheap_rejection(data: bytes, limits: Limits) -> None:
    """The data is far too short to hold the claimed pixels: only a refusal from the header
    (not a decode attempt, which would say ``corrupt``) gives this reason."""
    tracemalloc.start()
    try:
        assert reason(data, limits) == "too_many_pixels"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes traced while refusing from the header"


def test_pixel_bomb_png_is_refused_from_the_header() -> None:
    data = raw_png(20_000, 20_000, b"\x00" * 64)  # claims 400 MP in well under 1 KB
    assert len(data) < 1000
    _assert_cheap_rejection(data, Limits())


@pytest.mark.parametrize(("width", "height"), [(8000, 7000), (10_000, 10_000), (1, 60_000_000)])
def test_pixel_limit_between_and_above_pillow_thresholds(width: int, height: int) -> None:
    _assert_cheap_rejection(raw_png(width, height, b"\x00" * 64), Limits())


def test_pixel_bomb_jpeg_header() -> None:
    data = bytearray(to_bytes(quadrants(16, 16), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (30_000).to_bytes(2, "big") + (30_000).to_bytes(2, "big")
    _assert_cheap_rejection(bytes(data), Limits())


def test_pixel_bomb_gif_logical_screen() -> None:
    data = bytearray(to_bytes(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = (20_000).to_bytes(2, "little") + (20_000).to_bytes(2, "little")
    _assert_cheap_rejection(bytes(data), Limits())


def test_pixel_limit_is_configurable_and_inclusive() -> None:
    data = to_bytes(Image.new("RGB", (100, 50)), "PNG")
    assert decode(data, Limits(max_pixels=5000)).width == 100
    assert reason(data, Limits(max_pixels=4999)) == "too_many_pixels"


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "HEIF", "AVIF", "GIF"])
def test_pixel_limit_applies_to_every_format(fmt: str) -> None:
    data = to_bytes(quadrants(64, 64), fmt)
    assert reason(data, Limits(max_pixels=64 * 64 - 1)) == "too_many_pixels"


# --- frames ----------------------------------------------------------------------------------


def test_more_than_a_thousand_gif_frames_is_refused() -> None:
    assert reason(many_frame_gif(1001)) == "too_many_frames"


def test_a_thousand_gif_frames_is_allowed() -> None:
    decoded = decode(many_frame_gif(1000), Limits())
    assert decoded.frames == 1000
    assert image_of(decoded).size == (1, 1)


COLOURS = [(230, 20, 20), (20, 20, 230), (20, 200, 20)]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "AVIF", "HEIF"])
def test_frame_limit_is_configurable(fmt: str) -> None:
    data = animated(fmt, COLOURS)
    assert reason(data, Limits(max_frames=2)) == "too_many_frames"
    assert decode(data, Limits(max_frames=3)).frames == 3


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_decodes_the_first_frame_only(fmt: str) -> None:
    decoded = decode(animated(fmt, COLOURS), Limits())
    assert decoded.frames == 3
    assert image_of(decoded).size == (16, 16)
    assert close(image_of(decoded).getpixel((8, 8)), COLOURS[0])  # type: ignore[arg-type]


# --- output of a successful decode -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_by_one(fmt: str) -> None:
    decoded = decode(to_bytes(Image.new("RGB", (1, 1), (200, 40, 40)), fmt), Limits())
    assert (decoded.width, decoded.height, image_of(decoded).size) == (1, 1, (1, 1))
    assert image_of(decoded).mode == "RGB"
    assert close(image_of(decoded).getpixel((0, 0)), (200, 40, 40), 20)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_decoded_image_is_8bit_srgb_with_no_metadata(fmt: str) -> None:
    data = to_bytes(quadrants(), fmt, exif=exif_bytes(1, gps=True))
    decoded = decode(data, Limits())
    assert image_of(decoded).mode in ("RGB", "RGBA")
    assert image_of(decoded).info == {}
    assert decoded.format == fmt.lower()


# --- orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_exif_orientation_applied_once(fmt: str, orientation: int) -> None:
    reference = quadrants(48, 32)
    stored = stored_for_orientation(reference, orientation)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP", "AVIF") else {}
    data = to_bytes(stored, fmt, exif=exif_bytes(orientation), **options)
    decoded = decode(data, Limits())
    assert (decoded.width, decoded.height) == (48, 32)
    assert image_of(decoded).size == (48, 32)
    samples = quadrant_samples(image_of(decoded))
    for name, colour in QUADRANTS.items():
        assert close(samples[name], colour, 24), (name, samples, orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_orientation_is_never_applied_twice(orientation: int) -> None:
    """pillow-heif stores the orientation as irot/imir and libheif applies it on decode."""
    reference = quadrants(48, 32)
    stored = stored_for_orientation(reference, orientation)
    data = to_bytes(stored, "HEIF", quality=95, exif=exif_bytes(orientation))
    decoded = decode(data, Limits())
    assert (decoded.width, decoded.height) == (48, 32)
    samples = quadrant_samples(image_of(decoded))
    for name, colour in QUADRANTS.items():
        assert close(samples[name], colour, 24), (name, samples, orientation)


@pytest.mark.parametrize("bad", [0, 9, 65535])
def test_out_of_range_orientation_is_ignored(bad: int) -> None:
    data = to_bytes(quadrants(48, 32), "JPEG", quality=95, exif=exif_bytes(bad))
    decoded = decode(data, Limits())
    assert image_of(decoded).size == (48, 32)
    assert close(quadrant_samples(image_of(decoded))["tl"], QUADRANTS["tl"], 24)
