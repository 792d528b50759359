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
    with pytest.raises(SystemExit) as info:
        main(["render", str(inputs["heic"]), "--out", str(tmp_path), "--renditions", specs])
    captured = capsys.readouterr()
    assert info.value.code == 2
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
    captured = capsys.readouterr()
    assert status == 1
    for text in ("thumb", "1080p", "200x200"):
        assert text in captured.out
    # A file that was not rendered is an error: stderr, so that stdout holds only results.
    for text in ("notes.jpg: unsupported_format", "bomb.png: too_many_pixels"):
        assert text in captured.err and text not in captured.out
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


def test_paths_that_look_like_markup_are_printed_verbatim(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    """rich would read `[/x]` as a closing tag and raise MarkupError; `[red]` as a style."""
    folder = tmp_path / "[/x]" / "[red]"
    folder.mkdir(parents=True)
    good = write(folder, "[bold]ok[i].png", inputs["png_named_jpg"].read_bytes())
    bad = write(folder, "[i].jpg", b"not an image")
    status = main(["render", str(good), str(bad), "--out", str(tmp_path / "[/o]")])
    captured = capsys.readouterr()
    assert status == 1
    assert str(good) in captured.out
    assert f"{bad}: unsupported_format" in captured.err
    assert (tmp_path / "[/o]" / "thumb" / "[bold]ok[i].png.webp").is_file()


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        ("a/x.jpg", "b/x.jpg", "would both be written to"),
        ("a/x.jpg", "b/X.JPG", "would both be written to"),  # one file on macOS or Windows
        ("a/x.jpg", "a/../a/x.jpg", "is given twice"),
    ],
)
def test_inputs_with_the_same_name_are_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, Path],
    tmp_path: Path,
    first: str,
    second: str,
    why: str,
) -> None:
    for name in (first, second):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(inputs["png_named_jpg"].read_bytes())
    out = tmp_path / "out"
    paths = [str(tmp_path / first), str(tmp_path / second)]
    status = main(["render", *paths, "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.startswith("error: ") and paths[1] in captured.err
    assert why in captured.err
    assert not out.exists()


def test_an_out_that_is_a_file_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = write(tmp_path, "taken", b"")
    for target in (out, out / "below"):
        status = main(["render", str(inputs["heic"]), "--out", str(target)])
        captured = capsys.readouterr()
        assert status == 2
        assert captured.err.startswith(f"error: --out {target}: ")
        assert "Traceback" not in captured.err and captured.out == ""


def test_a_failed_write_is_an_error_result_and_leaves_no_part_file(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "mobile" / "phone.heic.webp").mkdir(parents=True)  # the target is taken by a folder
    status, results = run_json(capsys, str(inputs["heic"]), str(inputs["png_named_jpg"]),
                               "--out", str(out))  # fmt: skip
    assert status == 1
    assert results[0]["status"] == "error" and "phone.heic.webp" in results[0]["detail"]
    assert results[1]["status"] == "ok"
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("value", ["nope", '[{"name": "a"}]', "[1"])
def test_a_bad_renditions_flag_blames_the_flag(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path, value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["render", str(inputs["heic"]), "--out", str(tmp_path / "o"), "--renditions", value])
    captured = capsys.readouterr()
    assert info.value.code == 2
    assert "argument --renditions: " in captured.err
    assert "IMGPIPE_RENDITIONS" not in captured.err and captured.out == ""
    assert not (tmp_path / "o").exists()


def test_a_bad_renditions_variable_blames_the_variable(
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, Path],
    tmp_path: Path,
    engine_env: pytest.MonkeyPatch,
) -> None:
    engine_env.setenv("IMGPIPE_RENDITIONS", "nope")
    status = main(["render", str(inputs["heic"]), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("error: IMGPIPE_RENDITIONS: unknown preset 'nope'")
