"""`imgpipe demo`: the whole pipeline on the embedded stack, end to end, then stop.

Uploads go in with real PutObject calls, so they take the S3 notification path to the queue.
"""

import argparse
import html
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text

from core.catalog import Status
from infra.commands.arguments import bounded, positive
from infra.commands.folders import make_folder
from infra.console import console, error, error_console, human_bytes, saving, styled

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the pipeline end to end on the embedded stack", description=__doc__
    )
    parser.add_argument("--images", type=Path, default=None, metavar="DIR",
                        help="folder of images to upload (default: the bundled samples)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("imgpipe-out"), metavar="DIR",
                        help="folder for the renditions and index.html (default: %(default)s)")  # fmt: skip
    parser.add_argument("--workers", type=bounded(int, 1, 1024), default=os.cpu_count() or 1, metavar="N",
                        help="worker processes (default: the CPU count, %(default)s)")  # fmt: skip
    parser.add_argument("--timeout", type=positive(float), default=300, metavar="S",
                        help="seconds to wait for results (default: %(default)s)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    images = args.images or SAMPLES
    files = sorted(p for p in images.iterdir() if p.is_file()) if images.is_dir() else []
    problem = make_folder(args.out) if files else f"no files in {images}"
    if problem:  # found before the stack starts, not after the images are processed
        error(problem)
        return 2
    # Deferred, as in every command module (all are imported to build the parser): the
    # stack imports moto and boto3, about 2 s that `imgpipe render` must not pay.
    from infra.commands.environment import applied_env
    from infra.local.stack import LocalStack, StackOptions

    started = time.time()
    error_console.print("starting the embedded stack (moto on loopback, worker processes)...")
    with LocalStack(StackOptions(workers=args.workers)) as local, applied_env(local.client_env()):
        tracker = upload_and_wait(local, files, args.timeout)
        elapsed = time.time() - started
        rows = [row_for(path.name, tracker) for path in files]
        copy_outputs(local, rows, args.out)
    summary = summarise(rows, elapsed, tracker)
    if args.json:
        print(json.dumps({"images": rows, "summary": summary}, indent=2, default=str))
    else:
        print_table(rows, summary, args.out)
    return 0 if summary["unaccounted"] == 0 else 1


def upload_and_wait(local: Any, files: list[Path], timeout_s: float) -> Any:
    """Upload at the pace the workers drain (moto's SQS slows as its queue grows)."""
    # Deferred (see run): rich.progress takes about 90 ms, boto3 about 1 s.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from core.aws import s3_client
    from infra.local.accounting import Tracker

    stack = local.resources
    s3 = s3_client()
    tracker = Tracker(stack.raw_bucket, stack.table, stack.dlq_url)
    max_in_flight = 4 * stack.settings.batch_size
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=error_console, transient=True) as progress:
        task = progress.add_task("processing", total=len(files))
        queue = list(files)
        while (queue or tracker.pending) and time.monotonic() < deadline:
            while queue and len(tracker.pending) < max_in_flight:
                path = queue.pop(0)
                s3.put_object(Bucket=stack.raw_bucket, Key=path.name, Body=path.read_bytes())
                tracker.sent(path.name)
            time.sleep(0.2)
            tracker.poll()
            progress.update(
                task,
                completed=tracker.accounted,
                description=f"processing (queue depth {local.depth})",
            )
    return tracker


def row_for(name: str, tracker: Any) -> dict[str, Any]:
    item = tracker.items.get(name)
    if item is None:
        return {"source": name, "status": "DLQ" if name in tracker.dead else "MISSING"}
    finished = datetime.fromisoformat(item["finished_at"]).timestamp()
    return {
        "source": name,
        "status": item["status"],
        "reason": item.get("reason"),
        "format": item.get("format"),
        "width": item.get("width"),
        "height": item.get("height"),
        "bytes": item.get("size"),
        "latency_ms": round((finished - item["sent_at"]) * 1000),
        "renditions": item.get("renditions", []),
    }


def copy_outputs(local: Any, rows: list[dict[str, Any]], out: Path) -> None:
    """Download the renditions into ``out`` and write an index.html contact sheet."""
    from core.aws import s3_client  # deferred (see run): boto3 takes about 1 s

    s3 = s3_client()
    bucket = local.resources.output_bucket
    for row in rows:
        for rendition in row.get("renditions", []):
            target = out / rendition["key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, rendition["key"], str(target))
            rendition["path"] = str(target)
    (out / "index.html").write_text(contact_sheet(rows), encoding="utf-8")


def contact_sheet(rows: list[dict[str, Any]]) -> str:
    sections = []
    for row in rows:
        title = html.escape(row["source"])
        if row["status"] != Status.PROCESSED:
            why = html.escape(str(row.get("reason") or row["status"]))
            sections.append(f"<section><h2>{title}</h2><p class=bad>{why}</p></section>")
            continue
        figures = "".join(
            f'<figure><img src="{html.escape(r["key"])}" loading=lazy alt="{title} {r["name"]}">'
            f"<figcaption>{html.escape(r['name'])} {r['width']}x{r['height']} "
            f"{human_bytes(r['bytes'])}</figcaption></figure>"
            for r in row["renditions"]
        )
        meta = f"{row['format']} {row['width']}x{row['height']} {human_bytes(row['bytes'])}"
        sections.append(f"<section><h2>{title} <small>{meta}</small></h2>{figures}</section>")
    style = (
        "body{font:15px system-ui;margin:2rem;background:#fafafa}"
        "figure{display:inline-block;margin:.5rem;vertical-align:top}"
        "img{max-width:320px;max-height:240px;display:block;background:#ddd}"
        ".bad{color:#b00020}"
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>imgpipe demo</title><style>{style}</style>"
        f"<h1>imgpipe demo</h1>{''.join(sections)}"
    )


def summarise(rows: list[dict[str, Any]], elapsed_s: float, tracker: Any) -> dict[str, Any]:
    from infra.local.accounting import percentile  # deferred (see run): boto3, about 200 ms

    latencies = [float(r["latency_ms"]) for r in rows if "latency_ms" in r]
    return {
        "images": len(rows),
        "processed": sum(r["status"] == Status.PROCESSED for r in rows),
        "failed": sum(r["status"] == Status.FAILED for r in rows),
        "dlq": len(tracker.dead),
        "unaccounted": sum(r["status"] == "MISSING" for r in rows),
        "seconds": round(elapsed_s, 2),
        "images_per_s": round(len(rows) / elapsed_s, 2) if elapsed_s else None,
        "p50_latency_ms": percentile(latencies, 0.5) if latencies else None,  # never NaN in JSON
        "p95_latency_ms": percentile(latencies, 0.95) if latencies else None,
    }


def print_table(rows: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> None:
    """One row for each source and each rendition, narrow enough for 80 columns: nothing is
    cut short, a long file name folds onto the next line."""
    from rich.table import Table  # deferred (see run): about 40 ms, not needed with --json

    table = Table(title="imgpipe demo")
    table.add_column("source", overflow="fold", ratio=1)
    for column in ("rendition", "size", "bytes", "saving", "latency"):
        table.add_column(column, justify="left" if column in ("rendition", "size") else "right",
                         no_wrap=True)  # fmt: skip
    for row in rows:
        if row["status"] != Status.PROCESSED:
            name = Text(row["source"])
            name.append(f"\n{row.get('reason') or ''}".rstrip(), style="red")
            table.add_row(name, styled(row["status"], "red"), end_section=True)
            continue
        size = f"{row['width']}x{row['height']}"
        table.add_row(row["source"], row["format"], size, human_bytes(row["bytes"]), "",
                      f"{row['latency_ms']} ms")  # fmt: skip
        for r in row["renditions"]:
            table.add_row("", r["name"], f"{r['width']}x{r['height']}", human_bytes(r["bytes"]),
                          saving(r["bytes"], row["bytes"]))  # fmt: skip
        table.add_section()
    console.print(table)
    for line in summary_lines(summary):
        console.print(line, soft_wrap=True)
    console.print(f"renditions and contact sheet: {out / 'index.html'}", soft_wrap=True)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Short lines, so that a narrow terminal never breaks one between a number and its unit."""
    s = summary
    return [
        f"{s['images']} images in {s['seconds']} s ({s['images_per_s']} images/s)",
        f"{s['processed']} processed, {s['failed']} failed, {s['dlq']} in DLQ, "
        + f"{s['unaccounted']} unaccounted",
        f"latency p50 {_ms(s['p50_latency_ms'])}, p95 {_ms(s['p95_latency_ms'])}",
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
