"""PNG chunk hygiene before Pillow sees the bytes, and the tRNS key for low-bit greyscale.

Pillow rejects a whole image for a text chunk it cannot parse (an oversized or oddly compressed
``zTXt``, ImageMagick's "Raw profile type exif" ...) or for a bad checksum in a chunk nobody
needs, and it reads a chunk that claims more bytes than the file holds as far as the bytes go.
libpng, and so libvips, drop a broken ancillary chunk and fail a truncated critical one.
"""

import struct
import zlib
from typing import Final

from PIL import Image

from core.imaging.errors import ImageRejected

SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# The ancillary chunks the engine uses: transparency, colour profile, orientation, animation.
_KEPT_ANCILLARY: Final = frozenset({b"tRNS", b"iCCP", b"eXIf", b"acTL", b"fcTL", b"fdAT"})


def prepare_png(data: bytes) -> bytes:
    """Return ``data`` without the ancillary chunks the engine does not use or that are broken.

    As libpng does by default, a bad checksum drops an ancillary chunk and rejects a critical
    one (Pillow never checks the image data's). A chunk that claims more bytes than the file
    holds is a truncated file: ``corrupt``, where Pillow would decode whatever part is there.
    The bytes are copied only when a chunk is dropped.
    """
    view = memoryview(data)
    pos, end = len(SIGNATURE), len(data)
    kept: list[bytes] = []
    start = 0  # the first byte not yet copied into ``kept``
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunk_end = pos + 12 + length
        if not kind.isalpha():
            raise ImageRejected("corrupt", f"no PNG chunk at byte {pos}")
        if chunk_end > end:
            raise ImageRejected(
                "corrupt",
                f"truncated: the {kind.decode('ascii')} chunk claims {length} bytes, "
                f"{max(0, end - pos - 12)} remain",
            )
        critical = not kind[0] & 0x20  # an upper-case first letter
        wanted = critical or kind in _KEPT_ANCILLARY
        (crc,) = struct.unpack_from(">I", data, chunk_end - 4)
        if wanted and zlib.crc32(view[pos + 4 : chunk_end - 4]) != crc:
            if critical:
                raise ImageRejected("corrupt", f"bad checksum in the {kind.decode('ascii')} chunk")
            wanted = False
        if not wanted:
            kept.append(data[start:pos])
            start = chunk_end
        pos = chunk_end
        if kind == b"IEND":
            break
    if start == 0:
        return data
    kept.append(data[start:])
    return b"".join(kept)


def scale_grey_key(image: Image.Image, data: bytes) -> None:
    """Scale a 2- or 4-bit greyscale ``tRNS`` key to the 8-bit samples Pillow decodes to.

    Pillow widens 2- and 4-bit grey pixels to 0..255 but keeps the key in the file's own range,
    so no pixel matches it and the transparency is lost.
    """
    if data[12:16] != b"IHDR" or len(data) < 26:
        return
    bit_depth, colour_type = data[24], data[25]
    key = image.info.get("transparency")
    if colour_type == 0 and bit_depth in (2, 4) and isinstance(key, int):
        image.info["transparency"] = key * (255 // ((1 << bit_depth) - 1))
