"""Shared pytest fixtures. Image builders live in ``imaging_fixtures.py``; keep this file small."""

from collections.abc import Iterator

import pytest
from PIL import Image, ImageFile

from core.imaging import Limits


@pytest.fixture
def limits() -> Limits:
    """The engine's default limits (50 MiB, 50 MP, 1,000 frames)."""
    return Limits()


@pytest.fixture
def engine_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No IMGPIPE_* setting leaks in from the developer's shell."""
    for name in (
        "IMGPIPE_RENDITIONS",
        "IMGPIPE_MAX_BYTES",
        "IMGPIPE_MAX_PIXELS",
        "IMGPIPE_WORKERS",
        "IMGPIPE_ENCODE_THREADS",
        "IMGPIPE_RAW_BUCKET",
        "IMGPIPE_OUTPUT_BUCKET",
        "IMGPIPE_TABLE",
        "IMGPIPE_QUEUE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def pillow_globals() -> Iterator[None]:
    """Pillow's process-wide knobs are restored after the test, and truncated images stay
    refused: the engine must never switch ``LOAD_TRUNCATED_IMAGES`` on."""
    max_pixels = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = max_pixels
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
