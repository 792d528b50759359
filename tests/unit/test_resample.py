"""libvips as the engine's resampler: exact sizes, bands that join seamlessly, pixels that
agree with Pillow's Lanczos, and no libvips parser reachable by an upload's bytes."""

import io
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st
from imaging_fixtures import photo_like
from PIL import Image, ImageChops, ImageStat

from core.imaging.resample import BLOCK_SIZE, VipsPixels


def _photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    return Image.open(io.BytesIO(photo_like(width, height, "JPEG"))).convert(mode)


def test_libvips_parses_no_bytes_once_the_engine_is_loaded() -> None:
    """Only decoded pixels reach libvips: its loaders and savers refuse to run."""
    jpeg = photo_like(64, 48, "JPEG")
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(jpeg, "")
    pixels = pyvips.Image.new_from_memory(bytes(64 * 48 * 3), 64, 48, 3, "uchar")
    with pytest.raises(pyvips.Error):
        pixels.write_to_buffer(".png")


@settings(max_examples=40, deadline=None)
@given(
    source=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    size=st.tuples(st.integers(1, 400), st.integers(1, 400)),
    mode=st.sampled_from(["RGB", "L"]),
)
def test_any_resize_has_exactly_the_size_asked_for(
    source: tuple[int, int], size: tuple[int, int], mode: str
) -> None:
    pixels = VipsPixels.from_pillow(Image.new(mode, source, 128 if mode == "L" else (9, 99, 199)))
    box = (0.0, 0.0, float(source[0]), float(source[1]))
    out = pixels.resized(size, box).to_pillow()
    assert (out.mode, out.size) == (mode, size)


def test_a_centre_box_keeps_only_that_region() -> None:
    """cover's crop: a box over the right half of a half-black, half-white image is white."""
    image = Image.new("L", (200, 100), 0)
    image.paste(255, (100, 0, 200, 100))
    out = VipsPixels.from_pillow(image).resized((40, 40), (110.0, 5.0, 190.0, 85.0)).to_pillow()
    assert ImageStat.Stat(out).extrema[0] == (255, 255)


@pytest.mark.parametrize("size", [(1280, 853), (641, 427), (2, 2)])
def test_two_bands_give_the_same_pixels_as_one(size: tuple[int, int]) -> None:
    pixels = VipsPixels.from_pillow(_photo(1900, 1267))
    box = (0.0, 0.0, 1900.0, 1267.0)
    whole = pixels.resized(size, box).to_pillow()
    with ThreadPoolExecutor(1) as pool:
        banded = pixels.resized(size, box, pool).to_pillow()
    assert banded.tobytes() == whole.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_decoded_pixels_are_lent_to_libvips_not_copied(mode: str) -> None:
    """A frame of more than Pillow's default 16 MB block (17 MB in RGB) crosses into libvips
    without a pixel-sized allocation (a copy through ``tobytes`` allocates the whole frame)."""
    image = _photo(2400, 1800, mode)
    tracemalloc.start()
    try:
        pixels = VipsPixels.from_pillow(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    assert pixels.to_pillow() is image and image.readonly


@pytest.fixture
def small_blocks() -> Iterator[None]:
    """Pillow's allocation of a frame in several blocks (as when one large block fails)."""
    size = Image.core.get_block_size()
    Image.core.set_block_size(1 << 16)
    try:
        yield
    finally:
        Image.core.set_block_size(size)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_frame_in_several_blocks_is_copied_and_resizes_the_same(
    mode: str, small_blocks: None
) -> None:
    image = _photo(600, 400, mode)
    expected = VipsPixels.from_pillow(image.copy()).resized((300, 200), (0.0, 0.0, 600.0, 400.0))
    Image.core.set_block_size(BLOCK_SIZE)
    lent = VipsPixels.from_pillow(image.copy()).resized((300, 200), (0.0, 0.0, 600.0, 400.0))
    assert lent.to_pillow().tobytes() == expected.to_pillow().tobytes()


# Saving a read-only image file (``readonly`` is set by from_pillow) replaces its core image
# with a copy, and Pillow frees the old memory with the old core unless the export holds it. A
# freed 24 MB frame is unmapped, so reading it is a segmentation fault: hence a subprocess.
_OUTLIVE = """
import gc, io
from PIL import Image
from core.imaging.resample import VipsPixels
buffer = io.BytesIO()
Image.new("RGB", (3000, 2000), (10, 120, 230)).save(buffer, "PNG", compress_level=1)
image = Image.open(buffer)
image.load()
pixels = VipsPixels.from_pillow(image)
image.save(io.BytesIO(), "PNG", compress_level=1)
del image
gc.collect()
clutter = [bytearray(3000 * 2000 * 4) for _ in range(3)]
out = pixels.resized((2400, 1600), (0.0, 0.0, 3000.0, 2000.0)).to_pillow()
del pixels
gc.collect()
clutter = [bytearray(3000 * 2000 * 4) for _ in range(3)]
print(sorted(set(out.getdata())))
"""


def test_lent_pixels_outlive_the_pillow_image() -> None:
    """libvips holds the lent memory after Pillow's image (and its core) are gone, and a
    result's Pillow image holds its memory after libvips' side is gone."""
    run = subprocess.run(
        [sys.executable, "-c", _OUTLIVE], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[(10, 120, 230)]"


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_the_pixels_agree_with_pillows_lanczos(mode: str) -> None:
    """The same filter (Lanczos-3, reducing gap 2), on a 3:1 and a 1.5:1 reduction of a fractal
    (edges at every scale): the mean difference stays under a level in 255, and fewer than 1 %
    of the samples differ by more than 4 levels (the kernels' phases are rounded differently,
    which shows only at the sharpest edges)."""
    image = _photo(1800, 1200, mode)
    for size in [(600, 400), (1200, 800)]:
        box = (0.0, 0.0, 1800.0, 1200.0)
        ours = VipsPixels.from_pillow(image).resized(size, box).to_pillow()
        pillows = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        difference = ImageChops.difference(ours, pillows)
        assert max(ImageStat.Stat(difference).mean) < 1.0
        histogram = difference.histogram()  # 256 counts per band
        large = sum(count for index, count in enumerate(histogram) if index % 256 > 4)
        assert large < 0.01 * sum(histogram)
