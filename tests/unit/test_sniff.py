"""Format sniffing from magic bytes: names and Content-Types are never trusted."""

import struct

import pytest
from imaging_fixtures import ftyp, quadrants, to_bytes
from PIL import Image

from core.imaging import ImageRejected, Limits
from core.imaging.decode import decode
from core.imaging.isobmff import boxes
from core.imaging.sniff import AVIF, GIF, HEIF, JPEG, PNG, WEBP, sniff_format

pytestmark = pytest.mark.usefixtures("pillow_globals")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", JPEG),
        ("PNG", PNG),
        ("GIF", GIF),
        ("WEBP", WEBP),
        ("HEIF", HEIF),
        ("AVIF", AVIF),
    ],
)
def test_real_files_of_each_allowed_format(fmt: str, expected: str) -> None:
    data = to_bytes(quadrants(16, 16), fmt)
    assert sniff_format(data) == expected


def test_gif87a_and_gif89a() -> None:
    assert sniff_format(b"GIF87a" + bytes(20)) == GIF
    assert sniff_format(b"GIF89a" + bytes(20)) == GIF


def test_webp_needs_both_riff_and_webp_fourcc() -> None:
    assert sniff_format(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == WEBP
    assert sniff_format(b"RIFF\x10\x00\x00\x00WAVEfmt ") is None  # a RIFF WAV file


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), HEIF),
        (ftyp(b"heix", b"mif1"), HEIF),
        (ftyp(b"mif1", b"heic", b"miaf"), HEIF),
        (ftyp(b"msf1", b"hevc"), HEIF),
        (ftyp(b"avif", b"mif1", b"miaf"), AVIF),
        (ftyp(b"avis", b"msf1", b"avif"), AVIF),
        (ftyp(b"mif1", b"avif", b"miaf"), AVIF),  # major mif1, avif compatible brand
        (ftyp(b"mif1", b"miaf", b"MA1B", b"avif"), AVIF),
        (ftyp(b"msf1", b"avis"), AVIF),
        (ftyp(b"isom", b"iso2", b"mp41"), None),  # an MP4 video
        (ftyp(b"qt  ", b"qt  "), None),  # a QuickTime movie
        (ftyp(b"crx ", b"isom"), None),  # a Canon raw file
    ],
)
def test_isobmff_brands(box: bytes, expected: str | None) -> None:
    assert sniff_format(box + bytes(32)) == expected


def test_heif_and_avif_written_by_the_libraries_are_told_apart() -> None:
    heic = to_bytes(quadrants(16, 16), "HEIF")
    avif = to_bytes(quadrants(16, 16), "AVIF")
    assert heic[8:12] == b"heic" and sniff_format(heic) == HEIF
    assert avif[8:12] == b"avif" and sniff_format(avif) == AVIF


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",  # too short for the JPEG magic
        b"\x89PNG\r\n",  # truncated PNG signature
        b"hello, world: this is text named cat.jpg\n",
        b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7\n",
        b"\x00\x00\x00\x08ftyp",  # an ftyp box too small to hold a brand
        b"\x00\x00\x01\x00ftypheic",  # an ftyp box larger than the data
    ],
)
def test_not_an_allowed_image(data: bytes) -> None:
    assert sniff_format(data) is None


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM", "TGA", "PCX", "JPEG2000"])
def test_formats_pillow_decodes_but_we_do_not_allow(fmt: str) -> None:
    data = to_bytes(Image.new("RGB", (16, 16), (1, 2, 3)), fmt)
    assert sniff_format(data) is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "HEIF", "AVIF"])
def test_decoded_as_the_sniffed_format(fmt: str) -> None:
    """The bytes alone decide: there is no name or Content-Type parameter to lie with."""
    data = to_bytes(quadrants(16, 16), fmt)
    decoded = decode(data, Limits())
    assert decoded.format == fmt.lower()
    assert (decoded.width, decoded.height) == (16, 16)


# --- HEIF "mini" (brand mif3, ISO/IEC 23008-12:2024 Annex O) ---------------------------------


def _mif3_ftyp(brand: bytes) -> bytes:
    """A mif3 ``ftyp`` has no compatible brands: its minor_version field holds the brand."""
    return struct.pack(">I", 16) + b"ftyp" + b"mif3" + brand


@pytest.mark.parametrize(
    ("brand", "expected"), [(b"heic", HEIF), (b"avif", AVIF), (b"\x00\x00\x00\x00", HEIF)]
)
def test_mif3_brand(brand: bytes, expected: str) -> None:
    assert sniff_format(_mif3_ftyp(brand) + bytes(32)) == expected


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    return next((s, e) for k, s, e in boxes(data, start, end) if k == kind)


def _bits(fields: list[tuple[int, int]]) -> bytes:
    text = "".join(format(value, f"0{width}b") for value, width in fields)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def mini_file(image: Image.Image, fmt: str) -> bytes:
    """Re-wrap an encoder's one-item HEIC or AVIF as a mif3 file: its codec configuration
    (``hvcC``/``av1C``) and coded data go into a ``mini`` box, laid out as libheif reads it."""
    full = to_bytes(image, fmt, quality=90)
    meta = _child(full, 0, len(full), b"meta")
    ipco = _child(full, *_child(full, meta[0] + 4, meta[1], b"iprp"), b"ipco")
    config = full[slice(*_child(full, *ipco, b"hvcC" if fmt == "HEIF" else b"av1C"))]
    item = full[slice(*_child(full, 0, len(full), b"mdat"))]
    width, height = image.size
    header = _bits(
        [
            (0, 2),  # version
            *[(0, 1)] * 2,  # explicit_codec_types, float
            (1, 1),  # full_range
            *[(0, 1)] * 6,  # alpha, explicit_cicp, hdr, icc, exif, xmp
            (1, 2),  # chroma_subsampling 4:2:0
            (0, 3),  # orientation 1
            (0, 1),  # small dimensions: 7 bits each
            (width - 1, 7),
            (height - 1, 7),
            (0, 1),  # chroma horizontally centred
            (0, 1),  # chroma vertically centred
            (0, 1),  # high bit depth
            (1, 1),  # large codec config: 12-bit size
            (0, 1),  # small item data: 15-bit size
            (len(config), 12),
            (len(item) - 1, 15),
        ]
    )
    body = header + config + item
    brand = b"heic" if fmt == "HEIF" else b"avif"
    return _mif3_ftyp(brand) + struct.pack(">I", 8 + len(body)) + b"mini" + body


def test_mif3_heic_decodes() -> None:
    """pillow-heif's own sniff refuses mif3; libheif decodes it, so the engine does too."""
    decoded = decode(mini_file(Image.new("RGB", (64, 64), (200, 40, 40)), "HEIF"), Limits())
    assert (decoded.format, decoded.width, decoded.height) == ("heif", 64, 64)
    image = decoded.image
    assert image is not None
    pixel = image.getpixel((32, 32))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) <= 8 for a, b in zip(pixel, (200, 40, 40), strict=True))


def test_mif3_avif_is_unsupported_with_a_reason() -> None:
    """Our libavif build has no mini support (AVIF_ENABLE_EXPERIMENTAL_MINI)."""
    with pytest.raises(ImageRejected) as info:
        decode(mini_file(Image.new("RGB", (64, 64), (200, 40, 40)), "AVIF"), Limits())
    assert info.value.reason == "unsupported_format"
    assert "mif3" in info.value.detail
