"""AVIF geometry as libheif applies it: ``irot``/``imir`` read the way libheif writes them, and
the clean aperture (``clap``) cropped with libheif's rounding (libavif leaves that to callers).

Pillow's AVIF plugin maps libavif's irot/imir to an EXIF orientation, which the engine then
applies. libheif (through pillow-heif) writes its own irot/imir for each EXIF orientation, and
for 5 it picks a different but equivalent pair (irot 3 + imir 1, where Pillow writes irot 1 +
imir 0). Each AVIF here carries libheif's boxes, so its decode must match libheif's decode of
the HEIC: the two libraries agree on the angle direction, the mirror axis and their order.
"""

import struct
from fractions import Fraction

import pytest
from imaging_fixtures import (
    QUADRANTS,
    close,
    exif_bytes,
    image_of,
    quadrant_samples,
    quadrants,
    stored_for_orientation,
    to_bytes,
)

from core.imaging import ImageRejected, Limits
from core.imaging.decode import decode
from core.imaging.isobmff import boxes

pytestmark = pytest.mark.usefixtures("pillow_globals")

TRANSFORMS = (b"irot", b"imir")


def transform_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Where each irot/imir payload lies in ``data``: meta > iprp > ipco > irot|imir."""
    found: dict[bytes, tuple[int, int]] = {}
    for kind, start, end in boxes(data):
        if kind != b"meta":
            continue
        for kind2, start2, end2 in boxes(data, start + 4, end):
            if kind2 != b"iprp":
                continue
            for kind3, start3, end3 in boxes(data, start2, end2):
                if kind3 == b"ipco":
                    found.update(
                        {k: (s, e) for k, s, e in boxes(data, start3, end3) if k in TRANSFORMS}
                    )
    return found


@pytest.mark.parametrize("orientation", range(2, 9))
def test_avif_with_libheifs_transform_boxes_decodes_like_libheif(orientation: int) -> None:
    reference = quadrants(48, 32)
    stored = stored_for_orientation(reference, orientation)
    exif = exif_bytes(orientation)
    heic = to_bytes(stored, "HEIF", quality=95, exif=exif)
    avif = bytearray(to_bytes(stored, "AVIF", quality=95, exif=exif))
    theirs, ours = transform_boxes(heic), transform_boxes(bytes(avif))
    assert set(theirs) == set(ours)  # the same boxes, so payloads can be swapped in place
    for kind, (start, end) in theirs.items():
        at, _ = ours[kind]
        avif[at : at + end - start] = heic[start:end]

    for data in (heic, bytes(avif)):
        decoded = image_of(decode(data, Limits()))
        assert decoded.size == (48, 32)
        samples = quadrant_samples(decoded)
        for name, colour in QUADRANTS.items():
            assert close(samples[name], colour, 24), (name, samples, orientation)


# --- clap: the clean aperture ----------------------------------------------------------------


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    return next((s, e) for k, s, e in boxes(data, start, end) if k == kind)


def _grow(data: bytearray, payload_start: int, by: int) -> None:
    """Add ``by`` to the size of the box whose payload starts at ``payload_start``."""
    at = payload_start - 8
    data[at : at + 4] = (int.from_bytes(data[at : at + 4], "big") + by).to_bytes(4, "big")


def _shift_iloc(data: bytearray, iloc: int, by: int) -> None:
    """Move every item's data ``by`` bytes later (iloc versions 0 and 1, as libavif writes)."""
    version, sizes, more = data[iloc], data[iloc + 4], data[iloc + 5]
    offset_size, length_size, base_size = sizes >> 4, sizes & 15, more >> 4
    index_size = more & 15 if version == 1 else 0
    pos, count = iloc + 8, int.from_bytes(data[iloc + 6 : iloc + 8], "big")

    def bump(at: int, size: int) -> None:
        value = int.from_bytes(data[at : at + size], "big") + by
        data[at : at + size] = value.to_bytes(size, "big")

    for _ in range(count):
        pos += 2 + (2 if version == 1 else 0) + 2  # item_ID, construction_method, data_ref
        if base_size:
            bump(pos, base_size)
        pos += base_size
        extents = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        for _ in range(extents):
            pos += index_size
            if not base_size:
                bump(pos, offset_size)
            pos += offset_size + length_size


def _narrowed_clap(data: bytes, at: int, fields: tuple[int, ...]) -> bytes:
    """``data`` with the clap whose payload starts at ``at`` narrowed to ``fields``, taken in
    the image that clap shows. Both offsets run from a centre, and the shown image's centre is
    the old aperture's, so the offsets add."""
    old = struct.unpack_from(">IIIIiIiI", data, at)
    x = Fraction(old[4], old[5]) + Fraction(fields[4], fields[5])
    y = Fraction(old[6], old[7]) + Fraction(fields[6], fields[7])
    out = bytearray(data)
    offsets = (x.numerator, x.denominator, y.numerator, y.denominator)
    struct.pack_into(">IIIIiIiI", out, at, *fields[:4], *offsets)
    return bytes(out)


def with_clap(avif: bytes, *fields: int) -> bytes:
    """``avif`` with a ``clap`` property (8 fields: width, height, x and y offset as n/d pairs)
    associated with its primary item before any irot/imir, as MIAF orders them (libheif
    applies the properties in association order). A file that has a clap already (libheif
    1.23 crops its padded HEVC frame with one) gets that clap narrowed to ``fields`` instead:
    libheif refuses two."""
    data = bytearray(avif)
    meta = _child(avif, 0, len(avif), b"meta")
    iprp = _child(avif, meta[0] + 4, meta[1], b"iprp")
    ipco, ipma = _child(avif, *iprp, b"ipco"), _child(avif, *iprp, b"ipma")
    properties = list(boxes(avif, *ipco))
    kinds = [kind for kind, _, _ in properties]
    existing = next((s for k, s, _ in properties if k == b"clap"), None)
    if existing is not None:
        return _narrowed_clap(avif, existing, fields)
    iloc = _child(avif, meta[0] + 4, meta[1], b"iloc")
    index = len(properties) + 1
    assert avif[ipma[0]] == 0 and not avif[ipma[0] + 3] & 1  # 1-byte associations, 16-bit ids
    assert int.from_bytes(avif[ipma[0] + 4 : ipma[0] + 8], "big") == 1  # one item
    count_at = ipma[0] + 10
    clap = struct.pack(">I4s", 40, b"clap") + struct.pack(">IIIIiIiI", *fields)
    links = avif[count_at + 1 : count_at + 1 + avif[count_at]]
    first_transform = next(
        (i for i, link in enumerate(links) if kinds[(link & 0x7F) - 1] in TRANSFORMS), len(links)
    )
    insert_assoc = count_at + 1 + first_transform
    data[count_at] += 1
    data[insert_assoc:insert_assoc] = bytes([0x80 | index])
    data[ipco[1] : ipco[1]] = clap  # ipco ends before ipma starts: indices stay valid
    for payload, by in ((meta[0], 41), (iprp[0], 41), (ipco[0], 40)):
        _grow(data, payload, by)
    ipma_moved = ipma[0] + 40
    _grow(data, ipma_moved, 1)
    _shift_iloc(data, iloc[0], 41)
    return bytes(data)


def test_avif_clap_crops_like_libheif() -> None:
    """A 16x16 aperture offset by -8,-8 from the centre of 32x32 keeps the top-left quadrant."""
    avif = to_bytes(quadrants(32, 32), "AVIF", quality=95)
    cropped = decode(with_clap(avif, 16, 1, 16, 1, -8, 1, -8, 1), Limits())
    assert (cropped.width, cropped.height) == (16, 16)
    image = image_of(cropped)
    for xy in [(2, 2), (13, 2), (2, 13), (13, 13), (8, 8)]:  # inside: chroma bleeds at edges
        assert close(image.getpixel(xy), QUADRANTS["tl"], 24), xy  # type: ignore[arg-type]


def test_avif_clap_rounding_follows_libheif() -> None:
    """Odd sizes and half-pixel offsets: libheif floors the left edge and rounds the top one."""
    avif = to_bytes(quadrants(32, 32), "AVIF", quality=95)
    cropped = decode(with_clap(avif, 15, 1, 15, 1, 17, 2, 17, 2), Limits())
    # pcX = 17/2 + 31/2 = 24, left = floor(24 - 7) = 17; top = round(17) = 17
    assert (cropped.width, cropped.height) == (15, 15)
    assert close(image_of(cropped).getpixel((7, 7)), QUADRANTS["br"], 24)  # type: ignore[arg-type]


def test_avif_clap_is_applied_before_the_orientation() -> None:
    stored = stored_for_orientation(quadrants(32, 16), 6)  # stored 16 wide, 32 high
    avif = to_bytes(stored, "AVIF", quality=95, exif=exif_bytes(6))
    cropped = decode(with_clap(avif, 16, 1, 16, 1, 0, 1, -8, 1), Limits())  # the stored top half
    assert (cropped.width, cropped.height) == (16, 16)
    samples = quadrant_samples(image_of(cropped))
    # the stored top half is the displayed right half: green over yellow
    assert close(samples["tl"], QUADRANTS["tr"], 24) and close(samples["bl"], QUADRANTS["br"], 24)


def test_full_size_or_absent_clap_changes_nothing() -> None:
    avif = to_bytes(quadrants(32, 32), "AVIF", quality=95)
    for data in (avif, with_clap(avif, 32, 1, 32, 1, 0, 1, 0, 1)):
        decoded = decode(data, Limits())
        assert (decoded.width, decoded.height) == (32, 32)


@pytest.mark.parametrize(
    "fields", [(16, 0, 16, 1, 0, 1, 0, 1), (16, 1, 16, 1, 400, 1, 0, 1)], ids=["zero", "outside"]
)
def test_broken_clap_is_corrupt(fields: tuple[int, ...]) -> None:
    avif = to_bytes(quadrants(32, 32), "AVIF", quality=95)
    with pytest.raises(ImageRejected) as info:
        decode(with_clap(avif, *fields), Limits())
    assert info.value.reason == "corrupt"


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    "fields",
    [(16, 1, 16, 1, -8, 1, -8, 1), (13, 1, 9, 1, 3, 2, -5, 2), (31, 2, 29, 3, 1, 3, -7, 4)],
    ids=["quadrant", "odd", "fractional"],
)
def test_avif_clap_matches_libheif_on_the_same_boxes(
    orientation: int, fields: tuple[int, ...]
) -> None:
    """The same clap (and irot/imir) on a HEIC, which libheif crops itself, and on an AVIF,
    which the engine crops: the same size and the same pixels."""
    stored = stored_for_orientation(quadrants(48, 32), orientation)
    exif = exif_bytes(orientation)
    results = []
    for fmt in ("HEIF", "AVIF"):
        data = with_clap(to_bytes(stored, fmt, quality=95, exif=exif), *fields)
        results.append(image_of(decode(data, Limits())))
    theirs, ours = results
    assert ours.size == theirs.size
    w, h = ours.size
    for xy in [(1, 1), (w - 2, 1), (1, h - 2), (w - 2, h - 2), (w // 2, h // 2)]:
        assert close(ours.getpixel(xy), theirs.getpixel(xy), 24), xy  # type: ignore[arg-type]
