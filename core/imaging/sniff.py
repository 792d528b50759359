"""Identify an image container from its magic bytes. Names and Content-Types are never trusted."""

from typing import Final

# Pillow format names, as passed to ``Image.open(formats=...)``.
JPEG: Final = "JPEG"
PNG: Final = "PNG"
GIF: Final = "GIF"
WEBP: Final = "WEBP"
HEIF: Final = "HEIF"
AVIF: Final = "AVIF"

_HEIF_BRANDS: Final = frozenset(
    {
        b"heic",
        b"heix",
        b"heim",
        b"heis",
        b"hevc",
        b"hevx",
        b"hevm",
        b"hevs",
        b"mif1",
        b"msf1",
        b"mif3",
    }
)
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
# Brands that say "an image file" without naming the codec: the other brands decide.
_STRUCTURAL_BRANDS: Final = frozenset({b"mif1", b"msf1", b"mif3"})


def sniff_format(data: bytes) -> str | None:
    """Return the Pillow format name for ``data``, or None when it is not an allowed image."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data[4:8] == b"ftyp":
        return _sniff_isobmff(data)
    return None


def isobmff_brands(data: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ``ftyp`` box at the start of ``data``.

    A ``mif3`` file (HEIF "mini", ISO/IEC 23008-12:2024) has no compatible brands: its
    ``minor_version`` field holds the brand (``heic``, ``avif``) instead, so it is read as one.
    """
    if data[4:8] != b"ftyp":
        return frozenset()
    box_size = int.from_bytes(data[:4], "big")
    if box_size < 16 or box_size > len(data):
        return frozenset()
    major = data[8:12]
    brands = {major} | {data[i : i + 4] for i in range(16, box_size - 3, 4)}
    if major == b"mif3":
        brands.add(data[12:16])
    return frozenset(brands)


def _sniff_isobmff(data: bytes) -> str | None:
    """HEIF and AVIF share the ISO-BMFF ``ftyp`` box: decide by major and compatible brands."""
    brands = isobmff_brands(data)
    if not brands:
        return None
    major = data[8:12]
    if major in _AVIF_BRANDS or (major in _STRUCTURAL_BRANDS and brands & _AVIF_BRANDS):
        return AVIF
    if brands & _HEIF_BRANDS:
        return HEIF
    return None
