"""A bounded fuzz target for ``core.imaging.render``: byte mutations of valid images.

Seeds of every allowed format are made here with the encoders; hypothesis flips, overwrites,
inserts, deletes and truncates bytes. Whatever comes out must be a success or an
``ImageRejected`` with a known reason code: any other exception would reach the pipeline as
a transient failure and be retried into the DLQ. ``FUZZ_EXAMPLES`` bounds the run (see the
measured time beside it); raise it locally for a longer fuzz.
"""

import io
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging_fixtures import animated, quadrants, to_bytes
from PIL import Image

from core.imaging import REJECT_REASONS, ImageRejected, Limits, RenditionSpec
from core.imaging.engine import render

pytestmark = [
    pytest.mark.usefixtures("pillow_globals"),
    pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Pillow's "Corrupt EXIF data" etc.
]

FUZZ_EXAMPLES = 4000  # ~7 s on the 2-core dev machine (pytest --hypothesis-show-statistics)
# Small limits keep a mutated header from asking for a large (slow) decode of garbage.
LIMITS = Limits(max_bytes=1 << 20, max_pixels=1 << 20, max_frames=50)
SPECS = (RenditionSpec("thumb", 32, 32, "cover"), RenditionSpec("small", 48, 48, format="jpeg"))


@lru_cache(maxsize=1)
def seeds() -> tuple[bytes, ...]:
    picture = quadrants(40, 24)
    grey16 = Image.new("I;16", (8, 8), 30000)
    buffer = io.BytesIO()
    grey16.save(buffer, "PNG", transparency=30000)
    return (
        to_bytes(picture, "JPEG", quality=80),
        to_bytes(picture, "JPEG", quality=80, progressive=True),
        to_bytes(picture, "PNG"),
        to_bytes(picture.convert("P"), "PNG", transparency=0),
        buffer.getvalue(),
        to_bytes(picture, "WEBP", quality=80),
        to_bytes(picture, "WEBP", lossless=True),
        to_bytes(picture.convert("P"), "GIF"),
        to_bytes(picture, "HEIF", quality=60),
        to_bytes(picture, "AVIF", quality=60),
        animated("PNG", [(200, 0, 0), (0, 200, 0)], (8, 8)),
        animated("WEBP", [(200, 0, 0), (0, 200, 0)], (8, 8)),
    )


MUTATION = st.tuples(
    st.sampled_from(["flip", "flip", "set", "set", "insert", "delete", "truncate"]),
    st.one_of(
        st.integers(min_value=0, max_value=95),  # a byte of the headers, where most checks are
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),  # anywhere, as a share
    ),
    st.integers(min_value=0, max_value=255),
)


def mutate(data: bytes, mutations: list[tuple[str, int | float, int]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, value in mutations:
        if not buffer:
            break
        at = where if isinstance(where, int) else int(where * len(buffer))
        at = min(at, len(buffer) - 1)
        if kind == "flip":
            buffer[at] ^= 1 << (value % 8)
        elif kind == "set":
            buffer[at] = value
        elif kind == "insert":
            buffer[at:at] = bytes([value]) * (1 + value % 8)
        elif kind == "delete":
            del buffer[at : at + 1 + value % 8]
        else:
            del buffer[max(at, 1) :]
    return bytes(buffer)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=0, max_value=len(seeds()) - 1),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
)
def test_mutated_images_give_a_rendition_or_a_reason_code(
    seed: int, mutations: list[tuple[str, int | float, int]]
) -> None:
    data = mutate(seeds()[seed], mutations)
    try:
        result = render(data, SPECS, LIMITS)
    except ImageRejected as rejection:
        assert rejection.reason in REJECT_REASONS
        assert rejection.detail
        return
    assert [r.name for r in result.renditions] == ["thumb", "small"]
    assert all(r.data for r in result.renditions)


def test_every_seed_renders_unmutated() -> None:
    """The seeds are valid, so the fuzz starts from images that succeed."""
    for data in seeds():
        assert len(render(data, SPECS, LIMITS).renditions) == 2
