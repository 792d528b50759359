"""`imgpipe demo`'s console output: the table and the summary on a narrow terminal."""

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from infra.commands import demo
from infra.console import human_bytes

LONG_NAME = "IMG_20261201_231859_from-a-phone-camera-with-a-long-name.heic"
RENDITIONS = [("thumb", 200, 200, 4_200), ("mobile", 640, 427, 13_312),
              ("720p", 1080, 720, 26_100), ("1080p", 1620, 1080, 46_080)]  # fmt: skip


def item(status: str, reason: str | None = None) -> dict[str, Any]:
    """A table item as the tracker returns it (the demo adds `sent_at`)."""
    renditions = [
        {"name": n, "width": w, "height": h, "bytes": b, "key": f"{n}/x.webp"}
        for n, w, h, b in RENDITIONS
    ]
    return {
        "status": status,
        "reason": reason,
        "format": "jpeg",
        "width": 1800,
        "height": 1200,
        "size": 114_967,
        "sent_at": 1_796_167_000.0,
        "finished_at": "2026-12-01T23:16:41.234+00:00",
        "renditions": renditions if status == "PROCESSED" else [],
    }


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The demo's console on an 80-column terminal."""
    out = io.StringIO()
    console = Console(file=out, width=80, highlight=False, markup=False, color_system=None)
    monkeypatch.setattr(demo, "console", console)
    return out


def demo_rows() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    items = {
        "harbour-rotated.jpg": item("PROCESSED"),
        LONG_NAME: item("PROCESSED"),
        "not-a-photo.jpg": item("FAILED", "unsupported_format"),
        "bomb.png": item("FAILED", "too_many_pixels"),
    }
    names = [*items, "poison.jpg", "lost.jpg"]
    tracker = SimpleNamespace(items=items, dead={"poison.jpg"})
    rows = [demo.row_for(name, tracker) for name in names]
    return rows, demo.summarise(rows, 1234.567, tracker)


def test_the_table_fits_80_columns_and_cuts_nothing_short(narrow: io.StringIO) -> None:
    rows, summary = demo_rows()
    demo.print_table(rows, summary, Path("imgpipe-out"))
    text = narrow.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    for whole in ("harbour-rotated.jpg", "unsupported_format", "too_many_pixels", "FAILED",
                  "DLQ", "MISSING", "1800x1200", human_bytes(114_967), "1620x1080", "1080p",
                  "mobile", human_bytes(13_312)):  # fmt: skip
        assert whole in text, whole
    # The long name folds over several lines of its column but loses no character.
    source_column = "".join(line.split("│")[1].strip() for line in lines if line.count("│") > 2)
    assert LONG_NAME in source_column


def test_the_summary_lines_are_never_broken_at_80_columns(narrow: io.StringIO) -> None:
    rows, summary = demo_rows()
    demo.print_table(rows, summary, Path("imgpipe-out"))
    lines = narrow.getvalue().splitlines()
    assert f"{len(rows)} images in 1234.57 s ({summary['images_per_s']} images/s)" in lines
    assert "2 processed, 2 failed, 1 in DLQ, 1 unaccounted" in lines
    assert any(line.startswith("latency p50 ") and line.endswith(" ms") for line in lines)


def test_no_latencies_give_null_in_json_not_nan() -> None:
    tracker = SimpleNamespace(items={}, dead={"a.jpg"})
    rows = [demo.row_for("a.jpg", tracker)]
    summary = demo.summarise(rows, 1.0, tracker)
    assert json.loads(json.dumps(summary, allow_nan=False))["p50_latency_ms"] is None
    assert demo.summary_lines(summary)[-1] == "latency p50 -, p95 -"
