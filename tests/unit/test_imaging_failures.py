"""Every decoder failure is a reason code: ``corrupt`` for damaged bytes, ``unsupported_format``
(with a detail saying why) for valid files this build cannot decode. Never an uncaught error,
which the pipeline would count as transient and retry into the DLQ.

The inputs are made here: AVIF and HEIF from the encoders, then damaged at known places, and
HEIF files with other codecs written box by box (ISO/IEC 23008-12), like libheif's own test
files ``avc32.heif``, ``jpeg32.heif``, ``j2k32.heif``, ``vvc32.heif``, ``unci32.heif`` and
``rgb_generic_compressed_defl.heic`` (which the corpus run in the closing note also used).
"""

import importlib
import io
import struct

import pytest
from imaging_fixtures import quadrants, to_bytes
from PIL import Image

from core.imaging import REJECT_REASONS, ImageRejected, Limits, parse_renditions
from core.imaging.decode import decode
from core.imaging.engine import render

decode_module = importlib.import_module("core.imaging.decode")

pytestmark = [
    pytest.mark.usefixtures("pillow_globals"),
    pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning"),
]


def rejected(data: bytes, limits: Limits | None = None) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode(data, limits or Limits())
    assert info.value.reason in REJECT_REASONS
    return info.value


def avif() -> bytes:
    return to_bytes(quadrants(16, 16), "AVIF", quality=80)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + payload)


def heif_with_item(item_type: bytes, *properties: bytes, brands: bytes = b"mif1miaf") -> bytes:
    """A one-image HEIF whose primary item is ``item_type``, with ``ispe`` and ``properties``."""
    ispe = _full(b"ispe", struct.pack(">II", 32, 32))
    ipco = _box(b"ipco", ispe + b"".join(properties))
    links = bytes([0x80 | i for i in range(1, 2 + len(properties))])
    ipma = _full(b"ipma", struct.pack(">IHB", 1, 1, len(links)) + links)
    infe = _full(b"infe", struct.pack(">HH", 1, 0) + item_type + b"\x00", version=2)
    coded = bytes(range(64))

    def meta(mdat_at: int) -> bytes:
        iloc = _full(b"iloc", b"\x44\x00" + struct.pack(">HHHHII", 1, 1, 0, 1, mdat_at, 64))
        return _full(
            b"meta",
            _full(b"hdlr", b"\x00" * 4 + b"pict" + b"\x00" * 13)
            + _full(b"pitm", struct.pack(">H", 1))
            + iloc
            + _full(b"iinf", struct.pack(">H", 1) + infe)
            + _box(b"iprp", ipco + ipma),
        )

    ftyp = _box(b"ftyp", brands[:4] + b"\x00\x00\x00\x00" + brands)
    head = ftyp + meta(0)
    return ftyp + meta(len(head) + 8) + _box(b"mdat", coded)


# --- decoder exceptions outside the old list (RuntimeError from libavif) --------------------


def _damage(data: bytes, marker: bytes, offset: int, value: int) -> bytes:
    at = data.index(marker) + offset
    return data[:at] + bytes([value]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("marker", "offset", "value", "message"),
    [
        # the first byte of the AV1 bitstream: libavif's "Decoding of color planes failed"
        (b"mdat", 4, 0x00, "color planes"),
        # the av1C box's type, so the item has no codec configuration: "Missing or empty image item"
        (b"av1C", 0, 0x00, "empty image item"),
        # matrix_coefficients 0xFF06, which libyuv cannot convert: "Conversion from YUV failed"
        (b"nclx", 8, 0xFF, "YUV"),
    ],
    ids=["bitstream", "av1C", "nclx"],
)
def test_runtime_errors_from_libavif_are_corrupt(
    marker: bytes, offset: int, value: int, message: str
) -> None:
    data = _damage(avif(), marker, offset, value)
    with pytest.raises(RuntimeError, match=message):  # what Pillow raises on these bytes
        Image.open(io.BytesIO(data), formats=["AVIF"]).load()
    rejection = rejected(data)
    assert rejection.reason == "corrupt"
    assert "RuntimeError" in rejection.detail and message in rejection.detail


@pytest.mark.parametrize("stage", ["_open", "count_frames", "scale_grey_key", "to_srgb8"], ids=str)
@pytest.mark.parametrize("error", [RuntimeError, KeyError, ZeroDivisionError, AttributeError])
def test_any_exception_in_any_decode_stage_is_a_reason_code(
    monkeypatch: pytest.MonkeyPatch, stage: str, error: type[Exception]
) -> None:
    """Whatever a decoder (or a colour transform) raises on the bytes, never a raw exception."""

    def broken(*args: object, **kwargs: object) -> None:
        raise error("raised by the decoder")

    monkeypatch.setattr(decode_module, stage, broken)
    rejection = rejected(to_bytes(quadrants(16, 16), "PNG"))
    assert rejection.reason == "corrupt"
    assert error.__name__ in rejection.detail


@pytest.mark.parametrize("stage", ["_open", "to_srgb8"], ids=str)
def test_running_out_of_memory_is_not_the_images_fault(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """An image within the limits that meets no memory met other records' memory: the error
    propagates (the pipeline retries it) instead of recording a good image FAILED."""

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(decode_module, stage, exhausted)
    with pytest.raises(MemoryError):
        decode(to_bytes(quadrants(16, 16), "PNG"), Limits())


def test_render_never_lets_a_decoder_error_out() -> None:
    with pytest.raises(ImageRejected) as info:
        render(_damage(avif(), b"mdat", 4, 0x00), parse_renditions("thumbs"), Limits())
    assert info.value.reason == "corrupt"


def test_an_unreadable_header_says_so_instead_of_naming_a_buffer() -> None:
    rejection = rejected(b"\xff\xd8\xff\xe0" + bytes(64))
    assert rejection.reason == "corrupt"
    assert "BytesIO" not in rejection.detail and "header" in rejection.detail


# --- valid, but not decodable here: unsupported_format ---------------------------------------


@pytest.mark.parametrize(
    ("item_type", "codec"),
    [
        (b"avc1", "AVC (H.264)"),
        (b"jpeg", "JPEG"),
        (b"j2k1", "JPEG 2000"),
        (b"vvc1", "VVC (H.266)"),
        (b"unci", "uncompressed"),
    ],
)
def test_heif_with_a_codec_we_lack_is_unsupported(item_type: bytes, codec: str) -> None:
    rejection = rejected(heif_with_item(item_type))
    assert rejection.reason == "unsupported_format"
    assert codec in rejection.detail and "HEIF" in rejection.detail


def test_deflate_compressed_uncompressed_heif_names_the_compression() -> None:
    cmpc = _full(b"cmpC", b"defl" + b"\x00")
    rejection = rejected(heif_with_item(b"unci", cmpc))
    assert rejection.reason == "unsupported_format"
    assert "deflate-compressed uncompressed" in rejection.detail


def test_heif_with_a_broken_hevc_stream_stays_corrupt() -> None:
    """The codec check only names codecs we lack: damaged HEVC is still ``corrupt``."""
    assert rejected(heif_with_item(b"hvc1")).reason == "corrupt"


@pytest.mark.parametrize("precision", [12, 16])
def test_jpeg_with_more_than_8_bits_is_unsupported(precision: int) -> None:
    data = bytearray(to_bytes(quadrants(16, 16), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC1  # extended sequential, the process that allows 12 bits
    data[sof + 4] = precision
    rejection = rejected(bytes(data))
    assert rejection.reason == "unsupported_format"
    assert f"{precision}-bit JPEG" in rejection.detail


def test_truncated_8_bit_jpeg_stays_corrupt() -> None:
    data = to_bytes(Image.effect_noise((64, 64), 80).convert("RGB"), "JPEG")
    assert rejected(data[: len(data) // 2]).reason == "corrupt"


def test_avif_feature_libavif_does_not_implement_is_unsupported() -> None:
    # A pixi box claiming a 255-bit third channel: libavif answers AVIF_RESULT_NOT_IMPLEMENTED.
    data = _damage(avif(), b"pixi", 11, 0xFF)
    rejection = rejected(data)
    assert rejection.reason == "unsupported_format"
    assert "Not implemented" in rejection.detail


# --- too_many_pixels quotes the configured limit ---------------------------------------------


def test_pillow_bomb_error_detail_quotes_the_configured_limit() -> None:
    """A GIF frame larger than its screen trips Pillow's own bomb check inside ``load``."""
    limit = 10_000_000
    wide = 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1
    data = bytearray(to_bytes(Image.new("P", (4, 4)), "GIF"))
    frame = data.index(b",")  # image descriptor: x, y, width, height (little-endian)
    data[frame + 5 : frame + 9] = struct.pack("<HH", 65535, wide // 65535 + 1)
    rejection = rejected(bytes(data), Limits(max_pixels=limit))
    assert rejection.reason == "too_many_pixels"
    assert f"limit of {limit} pixels" in rejection.detail
    assert str(2 * (Image.MAX_IMAGE_PIXELS or 0)) not in rejection.detail


def test_header_pixel_check_detail_quotes_the_configured_limit() -> None:
    rejection = rejected(to_bytes(Image.new("RGB", (100, 50)), "PNG"), Limits(max_pixels=4999))
    assert rejection.detail == "100x50 exceeds the limit of 4999 pixels"
