"""The delivery benchmark: one row per input, rejected files named, a clear exit on bad use."""

import json
from pathlib import Path

import pytest

from loadtest.delivery_bench import main
from loadtest.synthetic import photo_like_bytes


def test_rows_for_images_and_rejections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jpg").write_bytes(photo_like_bytes(320, 240, seed=1))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    assert main([str(tmp_path), "--repeat", "1", "--json"]) == 0
    rows = {row["file"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["b.jpg"] == {"file": "b.jpg", "rejected": "unsupported_format"}
    timed = rows["a.jpg"]
    assert 0 < timed["placeholder_ms"] and 0 < timed["default_ms"] and 0 < timed["responsive_ms"]
    assert timed["responsive_ratio"] == round(timed["responsive_ms"] / timed["default_ms"], 2)


def test_a_missing_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
