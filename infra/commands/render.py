"""`imgpipe render FILE... --out DIR`: run the engine on local files, with no AWS."""

import argparse
import json
import os
from pathlib import Path
from typing import Any

from core.imaging import ImageRejected, Limits, RenditionSpec, SpecError, parse_renditions, render
from core.settings import Settings, SettingsError
from infra.console import console, error_console, human_bytes, saving


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render", help="render local files to renditions", description=__doc__
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--renditions",
        default=None,
        help="preset name or JSON list of specs (default: $IMGPIPE_RENDITIONS or 'default')",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        specs = (
            parse_renditions(args.renditions)
            if args.renditions is not None
            else settings.renditions
        )
    except (SpecError, SettingsError) as exc:
        error_console.print(f"[red]error:[/] {exc}")
        return 2
    results = [render_file(path, args.out, specs, settings.limits) for path in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print_result(result)
    return 1 if any(r["status"] != "ok" for r in results) else 0


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
    except ImageRejected as exc:
        result["reason"] = exc.reason
        result["detail"] = exc.detail
        return result
    except OSError as exc:
        result["status"] = "error"
        result["detail"] = f"{type(exc).__name__}: {exc.strerror or exc}"
        return result
    source = rendered.source
    result["status"] = "ok"
    result["source"] = {
        "format": source.format,
        "width": source.width,
        "height": source.height,
        "bytes": source.bytes,
    }
    for rendition in rendered.renditions:
        target = out / rendition.name / f"{path.name}.{rendition.extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(rendition.data)
        os.replace(tmp, target)
        result["renditions"].append(
            {
                "name": rendition.name,
                "format": rendition.format,
                "width": rendition.width,
                "height": rendition.height,
                "bytes": len(rendition.data),
                "path": str(target),
            }
        )
    return result


def print_result(result: dict[str, Any]) -> None:
    # Deferred: every command module is imported to build the parser, and rich.table takes
    # about 40 ms that `--json` and the other commands need not pay.
    from rich.table import Table

    if result["status"] != "ok":
        why = result["reason"] or "error"
        console.print(f"[bold]{result['file']}[/]: [red]{why}[/] {result.get('detail', '')}")
        return
    source = result["source"]
    title = (
        f"{result['file']}  {source['format']} {source['width']}x{source['height']}"
        f"  {human_bytes(source['bytes'])}"
    )
    table = Table(title=title, title_justify="left")
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
