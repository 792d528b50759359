"""Turn any exception a decoder raised on an input into a rejection with a reason code.

Decoders signal a bad input with whatever they like (Pillow's ``OSError`` and ``SyntaxError``,
libavif's and libheif's ``RuntimeError`` and ``ValueError``, ``struct.error`` ...), so the
exception type says little. The reason is chosen from what the input is instead: a file that
is valid but uses a codec or feature this build lacks is ``unsupported_format``; everything
else is ``corrupt``. Nothing a decoder raises is ever transient: the same bytes fail the same way.
"""

import re
from typing import Final

from PIL import Image, UnidentifiedImageError

from core.imaging.errors import ImageRejected
from core.imaging.isobmff import undecodable_codec
from core.imaging.sniff import AVIF, HEIF, JPEG, isobmff_brands

_DECODABLE: Final = {HEIF: frozenset({b"hvc1"}), AVIF: frozenset({b"av01"})}
# Messages by which libavif ("Not implemented", AVIF_RESULT_NOT_IMPLEMENTED) and libheif (no
# plugin for a codec) say "valid, but not something this build decodes". libheif's "Unsupported
# data version" is left out: in practice it is a damaged box, as in libheif's own fuzz corpus.
_UNSUPPORTED_MESSAGE: Final = re.compile(
    r": Not implemented$|Unsupported codec|has not been built in|[Nn]o decoding plugin"
)
_LIMIT_MESSAGE: Final = re.compile(r"security limit exceeded", re.IGNORECASE)
_BOMB_SIZE: Final = re.compile(r"Image size \((\d+) pixels\)")
_MAX_DETAIL: Final = 300
# Frame headers (SOFn); libjpeg has never implemented the hierarchical ones.
_HIERARCHICAL: Final = frozenset({0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF})
_SOF_MARKERS: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB, *_HIERARCHICAL})


def rejection(exc: BaseException, fmt: str, data: bytes, max_pixels: int) -> ImageRejected:
    """The rejection for ``exc``, raised while decoding ``data`` (sniffed as ``fmt``)."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        found = _BOMB_SIZE.search(str(exc))
        size = f"{found.group(1)} pixels" if found else "the image"
        return ImageRejected("too_many_pixels", f"{size} exceeds the limit of {max_pixels} pixels")
    if _LIMIT_MESSAGE.search(str(exc)):
        return ImageRejected("too_many_pixels", f"the decoder refused the size: {_text(exc)}")
    unsupported = _unsupported_feature(fmt, data)
    if unsupported is not None:
        return ImageRejected("unsupported_format", unsupported)
    if _UNSUPPORTED_MESSAGE.search(str(exc)):
        return ImageRejected(
            "unsupported_format", f"{fmt} feature this build cannot decode: {_text(exc)}"
        )
    return ImageRejected("corrupt", _text(exc))


def _text(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):  # its message only names a BytesIO
        return "the decoder could not read the header"
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_MAX_DETAIL]


def _unsupported_feature(fmt: str, data: bytes) -> str | None:
    """Why a well-formed ``data`` cannot be decoded here, from its headers; None if it could."""
    if fmt == JPEG:
        return _jpeg_feature(data)
    if fmt not in _DECODABLE:
        return None
    if fmt == AVIF and b"mif3" in isobmff_brands(data):
        return "AVIF in the 'mini' container (brand mif3): libavif here does not read it"
    codec = undecodable_codec(data, _DECODABLE[fmt])
    if codec is None:
        return None
    return f"{fmt} coded as {codec}: no decoder for it is built in"


def _jpeg_feature(data: bytes) -> str | None:
    """The first frame header's precision or process, when libjpeg here cannot decode it."""
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF_MARKERS:
            precision = data[pos + 4]
            if marker in _HIERARCHICAL:
                return "hierarchical JPEG is not supported"
            if precision != 8:
                return f"{precision}-bit JPEG is not supported (only 8-bit)"
            return None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None
