"""`imgpipe render FILE... --out DIR [--renditions ...] [--json]`, in process and as a script."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from imaging_fixtures import many_frame_gif, opened, quadrants, raw_png, to_bytes
from PIL import Image

from core.imaging import REJECT_REASONS
from infra.cli import main

pytestmark = pytest.mark.usefixtures("pillow_globals", "engine_env")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("imgpipe")
REQUIRED_KEYS = {"file", "status", "reason", "source", "renditions"}
RENDITION_KEYS = {"name", "format", "width", "height", "bytes", "path"}


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Good and bad inputs; names deliberately lie about the contents."""
    folder = tmp_path / "in"
    folder.mkdir()
    truncated = to_bytes(Image.effect_noise((96, 64), 80).convert("RGB"), "JPEG")
    return {
        "png_named_jpg": write(folder, "really-a-png.jpg", to_bytes(quadrants(400, 300), "PNG")),
        "heic": write(folder, "phone.heic", to_bytes(quadrants(320, 240), "HEIF")),
        "text_named_jpg": write(folder, "notes.jpg", b"this is text, not a photo\n"),
        "empty": write(folder, "empty.png", b""),
        "bmp": write(folder, "old.bmp", to_bytes(quadrants(), "BMP")),
        "truncated": write(folder, "cut.jpg", truncated[: len(truncated) // 2]),
        "bomb": write(folder, "bomb.png", raw_png(20_000, 20_000, b"\x00" * 64)),
        "frames": write(folder, "flipbook.gif", many_frame_gif(1001)),
    }


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    status = main(["render", *args, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out)


def check_shape(result: dict[str, Any]) -> None:
    assert REQUIRED_KEYS <= set(result) and set(result) - REQUIRED_KEYS <= {"detail"}
    assert result["status"] in ("ok", "rejected")
    if result["status"] == "ok":
        assert result["reason"] is None
        assert set(result["source"]) == {"format", "width", "height", "bytes"}
        assert result["renditions"]
        for rendition in result["renditions"]:
            assert set(rendition) == RENDITION_KEYS
            path = Path(rendition["path"])
            assert path.is_file() and path.stat().st_size == rendition["bytes"]
            assert opened(path.read_bytes()).size == (rendition["width"], rendition["height"])
    else:
        assert result["reason"] in REJECT_REASONS
        assert result["renditions"] == []


def test_json_mixed_batch(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    status, results = run_json(capsys, *map(str, inputs.values()), "--out", str(out))
    assert status == 1
    assert [r["file"] for r in results] == [str(p) for p in inputs.values()]
    for result in results:
        check_shape(result)
    by_key = dict(zip(inputs, results, strict=True))
    assert {k: (r["status"], r["reason"]) for k, r in by_key.items()} == {
        "png_named_jpg": ("ok", None),
        "heic": ("ok", None),
        "text_named_jpg": ("rejected", "unsupported_format"),
        "empty": ("rejected", "empty"),
        "bmp": ("rejected", "unsupported_format"),
        "truncated": ("rejected", "corrupt"),
        "bomb": ("rejected", "too_many_pixels"),
        "frames": ("rejected", "too_many_frames"),
    }
    png = by_key["png_named_jpg"]
    assert png["source"] == {
        "format": "png",
        "width": 400,
        "height": 300,
        "bytes": inputs["png_named_jpg"].stat().st_size,
    }
    assert [(r["name"], r["format"], r["width"], r["height"]) for r in png["renditions"]] == [
        ("thumb", "webp", 200, 200),
        ("mobile", "webp", 400, 300),
        ("720p", "webp", 400, 300),
        ("1080p", "webp", 400, 300),
    ]
    assert png["renditions"][0]["path"] == str(out / "thumb" / "really-a-png.jpg.webp")
    assert by_key["heic"]["source"]["format"] == "heif"
    assert not list(out.rglob("notes.jpg*")) and not list(out.rglob("*.part"))


def test_json_all_good_exits_zero(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    good = [str(inputs["png_named_jpg"]), str(inputs["heic"])]
    status, results = run_json(capsys, *good, "--out", str(tmp_path / "o"))
    assert status == 0
    assert [r["status"] for r in results] == ["ok", "ok"]


def test_renditions_option_json_and_preset(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    specs = json.dumps(
        [{"name": "sq", "width": 50, "height": 50, "fit": "cover", "format": "source"}]
    )
    status, results = run_json(
        capsys, str(inputs["heic"]), "--out", str(tmp_path), "--renditions", specs
    )
    assert status == 0
    (rendition,) = results[0]["renditions"]
    assert (rendition["format"], rendition["width"], rendition["height"]) == ("jpeg", 50, 50)
    assert rendition["path"].endswith("sq/phone.heic.jpg")

    status, results = run_json(
        capsys, str(inputs["heic"]), "--out", str(tmp_path), "--renditions", "thumbs"
    )
    assert [r["name"] for r in results[0]["renditions"]] == ["thumb"]


def test_renditions_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, Path],
    tmp_path: Path,
    engine_env: pytest.MonkeyPatch,
) -> None:
    engine_env.setenv("IMGPIPE_RENDITIONS", "jpeg")
    _, results = run_json(capsys, str(inputs["png_named_jpg"]), "--out", str(tmp_path))
    assert {r["format"] for r in results[0]["renditions"]} == {"jpeg"}


def test_byte_limit_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, Path],
    tmp_path: Path,
    engine_env: pytest.MonkeyPatch,
) -> None:
    engine_env.setenv("IMGPIPE_MAX_BYTES", "1000")
    status, results = run_json(capsys, str(inputs["png_named_jpg"]), "--out", str(tmp_path))
    assert status == 1
    assert (results[0]["status"], results[0]["reason"]) == ("rejected", "too_large")


def test_invalid_renditions_name_the_field(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    specs = json.dumps(
        [{"name": "a", "width": 5, "height": 5}, {"name": "b", "width": 0, "height": 5}]
    )
    status = main(["render", str(inputs["heic"]), "--out", str(tmp_path), "--renditions", specs])
    captured = capsys.readouterr()
    assert status == 2
    assert "renditions[1].width" in captured.err
    assert not (tmp_path / "a").exists()


def test_missing_file_does_not_stop_the_others(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.jpg"
    status, results = run_json(
        capsys, str(missing), str(inputs["heic"]), "--out", str(tmp_path / "o")
    )
    assert status == 1
    assert results[0]["status"] != "ok" and results[0]["renditions"] == []
    assert results[1]["status"] == "ok"


def test_table_output(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    files = [str(inputs["png_named_jpg"]), str(inputs["text_named_jpg"]), str(inputs["bomb"])]
    status = main(["render", *files, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    for text in ("thumb", "1080p", "200x200", "unsupported_format", "too_many_pixels"):
        assert text in out
    assert (tmp_path / "mobile" / "really-a-png.jpg.webp").is_file()


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["render", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out and "--renditions" in out and "--json" in out


def test_console_script(inputs: dict[str, Path], tmp_path: Path) -> None:
    assert SCRIPT.is_file(), "the imgpipe console script is not installed in this venv"
    files = [str(inputs["png_named_jpg"]), str(inputs["text_named_jpg"]), str(inputs["heic"])]
    out = tmp_path / "out"
    run = subprocess.run(
        [str(SCRIPT), "render", *files, "--out", str(out), "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert run.returncode == 1, run.stderr
    results = json.loads(run.stdout)
    for result in results:
        check_shape(result)
    assert [(r["status"], r["reason"]) for r in results] == [
        ("ok", None),
        ("rejected", "unsupported_format"),
        ("ok", None),
    ]
    assert sorted(p.name for p in (out / "thumb").iterdir()) == [
        "phone.heic.webp",
        "really-a-png.jpg.webp",
    ]
