"""Format sniffing from magic bytes: names and Content-Types are never trusted."""

import pytest
from imaging_fixtures import ftyp, quadrants, to_bytes
from PIL import Image

from core.imaging import Limits, decode
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
