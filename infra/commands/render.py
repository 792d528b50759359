"""`imgpipe render FILE... --out DIR`: run the engine on local files, with no AWS.

Renditions are written to DIR/RENDITION/NAME.EXT, where NAME is the input's file name. Two
inputs with the same name (a/x.jpg b/x.jpg) are refused before anything is written."""

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.text import Text

from core.imaging import ImageRejected, Limits, RenditionSpec, SpecError, parse_renditions
from core.imaging.engine import render
from core.settings import Settings, SettingsError
from infra.commands.folders import make_folder
from infra.console import console, error, error_console, human_bytes, saving, styled


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render", help="render local files to renditions", description=__doc__
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--renditions",
        type=_renditions,
        default=None,
        help="preset name or JSON list of specs (default: $IMGPIPE_RENDITIONS or 'default')",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def _renditions(text: str) -> tuple[RenditionSpec, ...]:
    try:
        return parse_renditions(text)
    except SpecError as exc:  # the flag is to blame here, not the variable the core names
        raise argparse.ArgumentTypeError(str(exc).removeprefix("IMGPIPE_RENDITIONS: ")) from None


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except (SpecError, SettingsError) as exc:
        error(exc)
        return 2
    specs = args.renditions if args.renditions is not None else settings.renditions
    problem = name_collision(args.files, args.out) or make_folder(args.out)
    if problem:
        error(problem)
        return 2
    results = [render_file(path, args.out, specs, settings.limits) for path in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print_result(result)
    return 1 if any(r["status"] != "ok" for r in results) else 0


def name_collision(files: Sequence[Path], out: Path) -> str | None:
    """Why two inputs would write the same outputs, or None. Names are compared case-folded:
    on a case-insensitive file system X.JPG and x.jpg are one output."""
    seen: dict[str, Path] = {}
    for path in files:
        first = seen.setdefault(path.name.casefold(), path)
        if first is path:
            continue
        if first.resolve() == path.resolve():
            return f"{path} is given twice"
        target = out / "{rendition}" / f"{path.name}.{{ext}}"
        return (f"{first} and {path} would both be written to {target}; render files with "
                "the same name to separate --out folders")  # fmt: skip
    return None


def render_file(
    path: Path, out: Path, specs: tuple[RenditionSpec, ...], limits: Limits
) -> dict[str, Any]:
    """Render one file; return the `--json` object for it (a rejection is a result, not a crash)."""
    result: dict[str, Any] = {
        "file": str(path),
        "status": "rejected",
        "reason": None,
        "source": None,
        "renditions": [],
    }
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:  # do not even read it
            raise ImageRejected("too_large", f"{size} bytes exceeds {limits.max_bytes}")
        rendered = render(path.read_bytes(), specs, limits)
        written = [write_rendition(out, path.name, rendition) for rendition in rendered.renditions]
    except ImageRejected as exc:
        result["reason"] = exc.reason
        result["detail"] = exc.detail
        return result
    except OSError as exc:
        result["status"] = "error"
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(path) else ""
        result["detail"] = f"{type(exc).__name__}: {exc.strerror or exc}{where}"
        return result
    source = rendered.source
    result["status"] = "ok"
    result["source"] = {
        "format": source.format,
        "width": source.width,
        "height": source.height,
        "bytes": source.bytes,
    }
    result["renditions"] = written
    return result


def write_rendition(out: Path, name: str, rendition: Any) -> dict[str, Any]:
    """Write one rendition atomically (no half-written file, even on Ctrl-C)."""
    target = out / rendition.name / f"{name}.{rendition.extension}"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        tmp.write_bytes(rendition.data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "name": rendition.name,
        "format": rendition.format,
        "width": rendition.width,
        "height": rendition.height,
        "bytes": len(rendition.data),
        "path": str(target),
    }


def print_result(result: dict[str, Any]) -> None:
    # Deferred: every command module is imported to build the parser, and rich.table takes
    # about 40 ms that `--json` and the other commands need not pay.
    from rich.table import Table

    if result["status"] != "ok":  # a file that was not rendered is an error message: stderr
        why = styled(result["reason"] or "error", "red")
        detail = result.get("detail") or ""
        line = Text.assemble(styled(result["file"], "bold"), ": ", why, " ", detail)
        error_console.print(line, soft_wrap=True)
        return
    source = result["source"]
    title = (
        f"{result['file']}  {source['format']} {source['width']}x{source['height']}"
        f"  {human_bytes(source['bytes'])}"
    )
    console.print(title, soft_wrap=True)  # a path is never broken across lines
    table = Table()
    for column in ("rendition", "format", "size", "bytes", "saving"):
        table.add_column(column, justify="right" if column in ("bytes", "saving") else "left")
    for r in result["renditions"]:
        table.add_row(
            r["name"],
            r["format"],
            f"{r['width']}x{r['height']}",
            human_bytes(r["bytes"]),
            saving(r["bytes"], source["bytes"]),
        )
    console.print(table)
