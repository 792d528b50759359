"""Encoding renditions on a shared executor: the same bytes as inline, and a stopped render
leaves no encode running or queued."""

import importlib
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import pytest
from imaging_fixtures import photo_like
from PIL import Image

from core.imaging import PRESETS, Limits, RenditionSpec
from core.imaging.engine import render
from core.imaging.parallel import SharedExecutor, shared_encoder

pytestmark = pytest.mark.usefixtures("pillow_globals")

engine_module = importlib.import_module("core.imaging.engine")


class Counting(ThreadPoolExecutor):
    """Counts what is submitted to it."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.submitted: list[object] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted.append(fn)
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize(
    ("preset", "fmt", "size"),
    [
        ("default", "JPEG", (2400, 1600)),
        ("jpeg", "JPEG", (1601, 2399)),  # odd sizes: the bands' boundary falls mid-pixel
        ("avif", "JPEG", (2400, 1600)),
        ("default", "PNG", (2000, 1300)),  # RGBA, and Pillow's reduce() before the filter
    ],
)
def test_parallel_resizes_and_encodes_give_the_same_bytes_as_inline(
    preset: str, fmt: str, size: tuple[int, int]
) -> None:
    """Large resizes run as two bands and encodes on the executor: the bytes are unchanged,
    whichever library resizes (libvips for RGB, Pillow for RGBA)."""
    data = photo_like(*size, fmt)
    inline = render(data, PRESETS[preset], Limits())
    with Counting(2) as pool:
        parallel = render(data, PRESETS[preset], Limits(), encoder=pool)
    # 3 encodes (the last runs inline), and 3 large renditions in bands: RGB in libvips, one
    # band each; RGBA in Pillow, one band per pass (2 passes)
    assert len(pool.submitted) == 3 + (1 if fmt == "JPEG" else 2) * 3
    assert [r.data for r in parallel.renditions] == [r.data for r in inline.renditions]
    assert [r.name for r in parallel.renditions] == [s.name for s in PRESETS[preset]]
    assert parallel.timings_ms["encode"] > 0


def test_one_image_in_three_formats_encodes_as_inline_on_the_executor() -> None:
    """The responsive preset hands the same pixels to the AVIF, WebP and JPEG encoders, and
    Image.save sets attributes on the image it saves: each concurrent encode gets its own."""
    data = photo_like(300, 200)
    inline = [r.data for r in render(data, PRESETS["responsive"], Limits()).renditions]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(5):
            parallel = render(data, PRESETS["responsive"], Limits(), encoder=pool)
            assert [r.data for r in parallel.renditions] == inline


def test_identical_renditions_are_encoded_once_on_the_executor() -> None:
    """A small source: three inside specs keep its size, so their pixels and bytes are equal."""
    specs = (
        RenditionSpec("a", 1920, 1080),
        RenditionSpec("b", 1280, 720),
        RenditionSpec("c", 640, 640),
    )
    with Counting(2) as pool:
        result = render(photo_like(300, 200), specs, Limits(), encoder=pool)
    assert len({r.data for r in result.renditions}) == 1
    assert len(pool.submitted) == 1  # b and c reuse a's encode; 300 x 200 is never banded


def test_a_stopped_render_waits_for_its_running_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline raising at a checkpoint stops the render: the encode that had started has
    finished when render() raises, and the queued one never runs."""
    started: list[int] = []
    finished: list[int] = []
    real = engine_module.encode

    def slow_encode(image: Image.Image, *args: Any) -> bytes:
        started.append(image.width)
        time.sleep(0.2)
        data: bytes = real(image, *args)
        finished.append(image.width)
        return data

    monkeypatch.setattr(engine_module, "encode", slow_encode)
    calls: list[str] = []

    def checkpoint(stage: str) -> None:
        calls.append(stage)
        if calls.count("rendition") == 3:  # after two renditions were submitted
            raise TimeoutError("deadline")

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(TimeoutError):
            render(photo_like(2400, 1600), PRESETS["default"], Limits(), checkpoint, pool)
        assert started == finished == [1620]  # the second was queued behind it: dropped
        time.sleep(0.3)
        assert started == [1620]


def test_the_shared_encoder_is_one_per_size_and_inline_below_two() -> None:
    assert shared_encoder(1) is None
    assert shared_encoder(2) is shared_encoder(2)


def test_a_busy_shared_executor_gets_no_bands() -> None:
    """Bands cost CPU: with every thread taken (a full batch), the resizes stay whole and
    only the encodes are queued."""

    class CountingShared(SharedExecutor):
        submitted = 0

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            CountingShared.submitted += 1
            return super().submit(fn, *args, **kwargs)

    with CountingShared(2) as pool:
        assert pool.idle
        blockers = [pool.submit(time.sleep, 1.0) for _ in range(2)]  # other records' work
        assert not pool.idle
        render(photo_like(2400, 1600), PRESETS["default"], Limits(), encoder=pool)
        wait(blockers)
    assert CountingShared.submitted == 2 + 3  # the blockers and three encodes: no bands
    assert pool.idle


def test_a_large_source_is_never_copied_into_bands() -> None:
    """The horizontal bands copy the source's rows: from more than MAX_SPLIT_SOURCE_PIXELS
    (a 9 MP PNG, decoded at full size) the first resize stays whole; the later ones, from
    the 1080 x 1080 rendition, are banded."""
    with Counting(2) as pool:
        render(photo_like(3000, 3000, "PNG"), PRESETS["default"], Limits(), encoder=pool)
    assert len(pool.submitted) == 3 + 2 * 2  # three encodes; 720p and mobile in two passes
