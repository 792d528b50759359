"""PNG inputs: broken metadata never rejects a decodable image, truncation is ``corrupt``, and a
``tRNS`` colour key keeps its transparency at every greyscale bit depth.

Files are assembled chunk by chunk (ISO/IEC 15948), in the spirit of PngSuite's ``tbbn0g04``
(4-bit grey with tRNS), ``tbwn0g16`` (16-bit grey with tRNS) and Pillow's
``png_decompression_dos.png`` and ``unknown_compression_method.png``.
"""

import struct
import zlib

import pytest
from imaging_fixtures import (
    QUADRANTS,
    exif_bytes,
    png_chunk,
    quadrant_samples,
    quadrants,
    stored_for_orientation,
    to_bytes,
)
from PIL import Image, PngImagePlugin

from core.imaging import ImageRejected, Limits
from core.imaging.decode import decode
from core.imaging.png import prepare_png

pytestmark = pytest.mark.usefixtures("pillow_globals")

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, payload) list of a PNG."""
    pos, found = len(SIGNATURE), []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        found.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return found


def insert_after_ihdr(data: bytes, *extra: bytes) -> bytes:
    at = len(SIGNATURE) + 25  # IHDR is always 13 bytes of payload
    return data[:at] + b"".join(extra) + data[at:]


def decoded(data: bytes) -> Image.Image:
    image = decode(data, Limits()).image
    assert image is not None
    return image


def reason(data: bytes) -> str:
    with pytest.raises(ImageRejected) as info:
        decode(data, Limits())
    return info.value.reason


def sample_png() -> bytes:
    return to_bytes(Image.new("RGB", (8, 8), (10, 120, 200)), "PNG")


# --- metadata never rejects ------------------------------------------------------------------


def _ztxt(keyword: bytes, text: bytes, method: int = 0) -> bytes:
    return png_chunk(b"zTXt", keyword + b"\x00" + bytes([method]) + zlib.compress(text))


BROKEN_METADATA = {
    # ImageMagick's EXIF-in-text, here with a body that is not hex: Pillow's getexif() raises
    "imagemagick_raw_exif": _ztxt(b"Raw profile type exif", b"\nexif\n      12\nnot hex at all\n"),
    # decompresses past PngImagePlugin.MAX_TEXT_CHUNK: Pillow raises ValueError at open
    "oversized_ztxt": _ztxt(b"Comment", b"a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1)),
    # compression method 1 does not exist: Pillow raises SyntaxError
    "unknown_ztxt_method": _ztxt(b"Comment", b"hello", method=1),
    # a text chunk with a wrong CRC: Pillow raises "broken PNG file"
    "bad_text_crc": png_chunk(b"tEXt", b"Software\x00x")[:-4] + b"\x00\x00\x00\x00",
    # a private chunk with a wrong CRC
    "bad_private_crc": png_chunk(b"prVt", b"data")[:-4] + b"\xde\xad\xbe\xef",
}


@pytest.mark.parametrize("chunk", list(BROKEN_METADATA.values()), ids=list(BROKEN_METADATA))
def test_broken_metadata_never_rejects_a_decodable_png(chunk: bytes) -> None:
    image = decoded(insert_after_ihdr(sample_png(), chunk))
    assert image.size == (8, 8)
    assert image.getpixel((4, 4)) == (10, 120, 200)


def test_metadata_that_cannot_be_parsed_never_rejects_a_webp() -> None:
    """Pillow's getexif() raises SyntaxError on an EXIF block that is not TIFF."""
    data = to_bytes(Image.new("RGB", (8, 8), (10, 120, 200)), "WEBP", exif=b"garbage")
    assert decoded(data).size == (8, 8)


def test_text_chunks_are_dropped_before_decoding_but_the_image_is_untouched() -> None:
    data = insert_after_ihdr(sample_png(), png_chunk(b"tEXt", b"Software\x00imgpipe"))
    cleaned = prepare_png(data)
    assert cleaned.startswith(SIGNATURE)
    assert [kind for kind, _ in chunks(cleaned)] == [b"IHDR", b"IDAT", b"IEND"]
    original = sample_png()
    assert prepare_png(original) is original  # nothing to drop: no copy


def test_the_chunks_the_engine_uses_are_kept() -> None:
    """eXIf (orientation) and iCCP survive the clean-up, so rotation and colour still apply."""
    stored = stored_for_orientation(quadrants(48, 32), 6)
    data = to_bytes(stored, "PNG", exif=exif_bytes(6))
    data = insert_after_ihdr(data, png_chunk(b"tEXt", b"Comment\x00rotated"))
    image = decoded(data)
    assert image.size == (48, 32)
    samples = quadrant_samples(image)
    for name, colour in QUADRANTS.items():
        assert all(abs(a - b) <= 8 for a, b in zip(samples[name], colour, strict=True)), name


def test_a_bad_crc_in_image_data_is_still_corrupt() -> None:
    data = bytearray(sample_png())
    idat = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, idat - 4)
    data[idat + 4 + length] ^= 0xFF  # the CRC's first byte
    with pytest.raises(ImageRejected) as info:
        decode(bytes(data), Limits())
    assert info.value.reason == "corrupt"
    assert info.value.detail == "bad checksum in the IDAT chunk"  # Pillow never checks it


# --- truncation ------------------------------------------------------------------------------


def test_idat_claiming_more_than_the_file_holds_is_corrupt() -> None:
    """Pillow reads what is there; when the zlib stream happens to end, it returns an image."""
    pixels = bytes(range(12))
    rows = b"\x00" + pixels[:6] + b"\x00" + pixels[6:]
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    compressed = zlib.compress(rows)
    claimed = struct.pack(">I", len(compressed) + 100_000) + b"IDAT" + compressed
    data = SIGNATURE + png_chunk(b"IHDR", header) + claimed  # no CRC, no IEND
    with pytest.raises(ImageRejected) as info:
        decode(data, Limits())
    assert info.value.reason == "corrupt"
    assert "IDAT" in info.value.detail and "truncated" in info.value.detail


def test_a_complete_png_without_iend_still_decodes() -> None:
    """libpng accepts this too: every image byte is there."""
    data = sample_png()
    assert decoded(data[: data.rindex(b"IEND") - 4]).size == (8, 8)


# --- tRNS colour keys on greyscale -----------------------------------------------------------


def grey_png(depth: int, values: list[int], key: int) -> bytes:
    """One row of greyscale ``values`` at ``depth`` bits, with ``key`` as the tRNS grey."""
    if depth == 16:
        row = b"".join(struct.pack(">H", v) for v in values)
    else:
        bits = "".join(format(v, f"0{depth}b") for v in values)
        bits += "0" * (-len(bits) % 8)
        row = int(bits, 2).to_bytes(len(bits) // 8, "big")
    header = struct.pack(">IIBBBBB", len(values), 1, depth, 0, 0, 0, 0)
    return (
        SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"tRNS", struct.pack(">H", key))
        + png_chunk(b"IDAT", zlib.compress(b"\x00" + row))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("depth", "values", "key"),
    [
        (1, [0, 1, 0, 1], 1),
        (2, [0, 1, 2, 3], 2),
        (4, [0, 5, 9, 15], 9),
        (8, [0, 5, 9, 200], 9),
        (16, [0, 30000, 30001, 65535], 30000),
        # after 16 -> 8 bits, 65534 and 65535 are both 255: only the exact key is transparent
        (16, [0, 30000, 65534, 65535], 65535),
    ],
)
def test_grey_colour_key_is_transparent_at_every_depth(
    depth: int, values: list[int], key: int
) -> None:
    image = decoded(grey_png(depth, values, key))
    assert image.mode == "RGBA"
    alpha = [image.getpixel((x, 0))[3] for x in range(len(values))]  # type: ignore[index]
    assert alpha == [0 if v == key else 255 for v in values]
