"""Just enough ISO-BMFF for what the decoders leave out: the codec of a HEIF or AVIF file that
failed to decode (for a reject's detail), and the primary item's properties (for ``clap``).
"""

import struct
from collections.abc import Iterator
from typing import Final

# What each item type is, for the detail text (ISO/IEC 23008-12 and its amendments).
CODEC_NAMES: Final = {
    b"hvc1": "HEVC",
    b"av01": "AV1",
    b"avc1": "AVC (H.264)",
    b"jpeg": "JPEG",
    b"j2k1": "JPEG 2000",
    b"vvc1": "VVC (H.266)",
    b"evc1": "EVC",
    b"unci": "uncompressed (ISO/IEC 23001-17)",
}
# Items that only combine or point at coded items: the codec is that of the items they use.
_DERIVED: Final = frozenset({b"grid", b"iovl", b"iden", b"tmap"})
_COMPRESSION_NAMES: Final = {b"defl": "deflate", b"zlib": "zlib", b"brot": "Brotli"}
_HEADER = struct.Struct(">I4s")


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_start, payload_end)`` for each box in ``data[start:end]``."""
    end = len(data) if end is None else min(end, len(data))
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body_start, body_end in boxes(data, start, end):
        if found == kind:
            return body_start, body_end
    return None


def item_types(data: bytes) -> tuple[bytes | None, dict[int, bytes]]:
    """The primary item's type and every item's type, from ``meta``/``pitm``/``iinf``."""
    meta = _child(data, 0, len(data), b"meta")
    if meta is None:
        return None, {}
    start, end = meta[0] + 4, meta[1]  # meta is a FullBox
    primary_id: int | None = None
    types: dict[int, bytes] = {}
    pitm = _child(data, start, end, b"pitm")
    if pitm is not None and pitm[1] - pitm[0] >= 6:
        version = data[pitm[0]]
        primary_id = int.from_bytes(data[pitm[0] + 4 : pitm[0] + (6 if version == 0 else 8)], "big")
    iinf = _child(data, start, end, b"iinf")
    if iinf is not None:
        count_size = 2 if data[iinf[0]] == 0 else 4
        for kind, body, body_end in boxes(data, iinf[0] + 4 + count_size, iinf[1]):
            version = data[body] if body < body_end else 0
            if kind != b"infe" or version < 2:
                continue
            id_size = 2 if version == 2 else 4
            item_id = int.from_bytes(data[body + 4 : body + 4 + id_size], "big")
            type_at = body + 4 + id_size + 2
            types[item_id] = data[type_at : type_at + 4]
    return (types.get(primary_id) if primary_id is not None else None), types


def undecodable_codec(data: bytes, decodable: frozenset[bytes]) -> str | None:
    """Describe the codec of the primary image when no decoder here handles it, else None."""
    primary, types = item_types(data)
    if primary is None:
        return None
    if primary in _DERIVED:
        missing = sorted({t for t in types.values() if t in CODEC_NAMES} - decodable)
        if not missing:
            return None
        primary = missing[0]
    if primary in decodable:
        return None
    name = CODEC_NAMES.get(primary, f"item type {primary.decode('latin-1')!r}")
    if primary == b"unci":
        compression = _unci_compression(data)
        if compression:
            name = f"{compression}-compressed {name}"
    return name


def _unci_compression(data: bytes) -> str | None:
    at = data.find(b"cmpC")
    if at < 4:
        return None
    code = data[at + 8 : at + 12]  # after the FullBox version and flags
    return _COMPRESSION_NAMES.get(code, code.decode("latin-1"))


def primary_properties(data: bytes) -> list[tuple[bytes, int, int]]:
    """The primary item's properties from ``ipco``/``ipma``, in association order."""
    meta = _child(data, 0, len(data), b"meta")
    if meta is None:
        return []
    start, end = meta[0] + 4, meta[1]
    pitm, iprp = _child(data, start, end, b"pitm"), _child(data, start, end, b"iprp")
    if pitm is None or iprp is None:
        return []
    primary = int.from_bytes(data[pitm[0] + 4 : pitm[0] + (6 if data[pitm[0]] == 0 else 8)], "big")
    ipco, ipma = _child(data, *iprp, b"ipco"), _child(data, *iprp, b"ipma")
    if ipco is None or ipma is None:
        return []
    properties = list(boxes(data, *ipco))
    version, wide = data[ipma[0]], data[ipma[0] + 3] & 1
    pos = ipma[0] + 8
    for _ in range(int.from_bytes(data[ipma[0] + 4 : ipma[0] + 8], "big")):
        id_size = 2 if version < 1 else 4
        item_id = int.from_bytes(data[pos : pos + id_size], "big")
        count = data[pos + id_size] if pos + id_size < ipma[1] else 0
        pos += id_size + 1
        size = 2 if wide else 1
        indices = [
            int.from_bytes(data[pos + i * size : pos + (i + 1) * size], "big")
            & (0x7FFF if wide else 0x7F)
            for i in range(count)
        ]
        pos += count * size
        if item_id == primary:
            return [properties[i - 1] for i in indices if 0 < i <= len(properties)]
    return []
