"""libvips as the engine's resampler: exact sizes, bands that join seamlessly, pixels that
agree with Pillow's Lanczos, and no libvips parser reachable by an upload's bytes."""

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st
from imaging_fixtures import photo_like
from PIL import Image, ImageChops, ImageStat

from core.imaging.resample import VipsPixels


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
