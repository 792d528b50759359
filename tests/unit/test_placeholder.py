"""The placeholder: ThumbHash bytes equal the reference implementation's (run under Node), and
the dominant colour and the spec that feeds them are the ones described."""

import base64
import io
import math
import random
from pathlib import Path
from typing import Any

import pytest
from node_runner import module_url, run_module
from PIL import Image

from core.imaging import placeholder
from core.imaging.placeholder import (
    dominant_color,
    placeholder_of,
    placeholder_spec,
    thumbhash,
)
from core.imaging.specs import PRESETS, RenditionSpec
from loadtest.synthetic import photo_like_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "infra" / "samples"

REFERENCE = f"""
import {{ rgbaToThumbHash }} from {module_url("infra/web/thumbhash.js")!r};
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({{ w, h, rgba }}) => {{
  const hash = Buffer.from(rgbaToThumbHash(w, h, Buffer.from(rgba, "base64"))).toString("base64");
  return {{ hash }};
}});
process.stdout.write(JSON.stringify(out));
"""


def _noise(w: int, h: int, seed: int, alpha: bool) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) if alpha or i % 4 != 3 else 255 for i in range(w * h * 4))


def _cases() -> list[tuple[str, int, int, bytes]]:
    cases = [
        ("1x1 opaque", 1, 1, bytes([200, 30, 60, 255])),
        ("1x1 transparent", 1, 1, bytes([200, 30, 60, 0])),
        ("solid grey", 8, 8, bytes([128, 128, 128, 255]) * 64),
        ("all transparent", 5, 4, bytes([0, 0, 0, 0]) * 20),
        ("noise 3x7", 3, 7, _noise(3, 7, 1, alpha=False)),
        ("noise 100x100", 100, 100, _noise(100, 100, 2, alpha=False)),
        ("noise 100x31 alpha", 100, 31, _noise(100, 31, 3, alpha=True)),
        ("noise 17x100 alpha", 17, 100, _noise(17, 100, 4, alpha=True)),
    ]
    for seed, (w, h) in enumerate([(640, 480), (480, 640), (500, 500)]):
        image = Image.open(io.BytesIO(photo_like_bytes(w, h, seed=seed)))
        image = image.convert("RGBA")
        image.thumbnail((32, 32))
        cases.append((f"photo {w}x{h}", image.width, image.height, image.tobytes()))
    for name in ("harbour-rotated.jpg", "badge-alpha.png", "street.webp", "loop.gif"):
        with Image.open(SAMPLES / name) as sample:
            image = sample.convert("RGBA")
        image.thumbnail((32, 32))
        cases.append((name, image.width, image.height, image.tobytes()))
    return cases


CASES = _cases()


def _ours_with_ties(w: int, h: int, rgba: bytes) -> tuple[bytes, set[int]]:
    """Our hash, and the nibbles (AC factors, by index) that rounding noise decides: those
    whose unrounded 15f is a tie x.5 to within 1e-9 (a coefficient that is 0 but for the
    noise), and every factor of a channel that does not vary (its scale is noise itself)."""
    factors: list[float] = []
    noise: set[int] = set()
    encode = placeholder._encode_channel

    def spy(*args: Any) -> tuple[float, list[float], float]:
        dc, ac, scale = encode(*args)
        if scale < 1e-9:
            noise.update(range(len(factors), len(factors) + len(ac)))
        factors.extend(ac)
        return dc, ac, scale

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(placeholder, "_encode_channel", spy)
        digest = thumbhash(w, h, rgba)
    start = 6 if digest[2] & 0x80 else 5
    ties = {i for i, f in enumerate(factors) if abs(15 * f - math.floor(15 * f) - 0.5) < 1e-9}
    return digest, {2 * start + i for i in ties | noise}


def _nibbles(digest: bytes) -> list[int]:
    return [n for byte in digest for n in (byte & 15, byte >> 4)]


def test_thumbhash_matches_the_reference_implementation() -> None:
    """Byte for byte, except where rounding noise decides (about 1e-17, from the last bit of
    cos(), which glibc and V8 compute differently): a coefficient that is 0 but for the noise
    gives 15f = 7.5 +- noise, and a channel that does not vary has noise for its AC terms
    (stored with a scale that quantises to 0, so they decode to nothing)."""
    payload, ties = [], {}
    for name, w, h, rgba in CASES:
        digest, ties[name] = _ours_with_ties(w, h, rgba)
        payload.append({"w": w, "h": h, "rgba": base64.b64encode(rgba).decode(),
                        "ours": base64.b64encode(digest).decode()})  # fmt: skip
    reference = run_module(REFERENCE, payload)
    exact = 0
    for (name, *_), sent, answer in zip(CASES, payload, reference, strict=True):
        ours, theirs = (_nibbles(base64.b64decode(sent["ours"])),
                        _nibbles(base64.b64decode(answer["hash"])))  # fmt: skip
        assert len(ours) == len(theirs) and len(ours) <= 50, name  # at most 25 bytes
        differ = {i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b}
        assert differ <= ties[name], (name, sorted(differ - ties[name]))
        exact += not differ
    assert exact >= len(CASES) - 4, exact


@pytest.mark.parametrize(("w", "h", "size"), [(101, 5, 101 * 5 * 4), (0, 5, 0), (4, 4, 63)])
def test_thumbhash_refuses_what_the_reference_refuses(w: int, h: int, size: int) -> None:
    with pytest.raises(ValueError):
        thumbhash(w, h, bytes(size))


def test_dominant_color_is_the_largest_cluster_of_opaque_pixels() -> None:
    # 70 % blue, 30 % red, and a transparent green border that must not count.
    pixels = [(20, 40, 200, 255)] * 70 + [(220, 10, 10, 255)] * 30 + [(0, 255, 0, 0)] * 200
    rgba = b"".join(bytes(p) for p in pixels)
    assert dominant_color(rgba) == "#1428c8"
    assert dominant_color(bytes([9, 8, 7, 0]) * 4) == "#090807"  # nothing opaque: all pixels


def test_placeholder_of_any_mode_is_compact_and_keeps_the_aspect() -> None:
    wide = Image.new("RGB", (640, 160), (255, 128, 0))
    grey = Image.new("LA", (100, 400), (90, 255))
    for image in (wide, grey, Image.new("P", (64, 64))):
        placeholder = placeholder_of(image)
        assert len(base64.b64decode(placeholder.thumbhash)) <= 25
        assert placeholder.color.startswith("#") and len(placeholder.color) == 7
    assert placeholder_of(wide).color == "#ff8000"
    digest = base64.b64decode(placeholder_of(wide).thumbhash)
    assert digest[4] & 0x80  # the reference's "landscape" bit
    assert wide.size == (640, 160)  # the rendition itself is not changed


def test_the_placeholder_comes_from_the_smallest_whole_frame_rendition() -> None:
    default = PRESETS["default"]
    # thumb (200x200 cover) is smaller, but a crop: mobile (inside) is the whole frame.
    chosen = placeholder_spec(default, 4000, 3000)
    assert chosen is not None and chosen.name == "mobile"
    crops = (RenditionSpec("a", 300, 300, "cover"), RenditionSpec("b", 100, 100, "cover"))
    chosen = placeholder_spec(crops, 4000, 3000)
    assert chosen is not None and chosen.name == "b"
    assert placeholder_spec((), 10, 10) is None
