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

from core.catalog import Status
from infra.console import console, error_console, human_bytes, saving

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the pipeline end to end on the embedded stack", description=__doc__
    )
    parser.add_argument("--images", type=Path, default=SAMPLES, help="folder of images to upload")
    parser.add_argument("--out", type=Path, default=Path("imgpipe-out"), help="output folder")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for results")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files = sorted(p for p in args.images.iterdir() if p.is_file()) if args.images.is_dir() else []
    if not files:
        error_console.print(f"[red]error:[/] no files in {args.images}")
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
        "p50_latency_ms": percentile(latencies, 0.5),
        "p95_latency_ms": percentile(latencies, 0.95),
    }


def print_table(rows: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> None:
    from rich.table import Table  # deferred (see run): about 40 ms, not needed with --json

    table = Table(title="imgpipe demo")
    for column in ("source", "format", "size", "rendition", "bytes", "saving", "latency"):
        table.add_column(column, justify="right" if column in ("bytes", "saving") else "left")
    for row in rows:
        if row["status"] != Status.PROCESSED:
            why = row.get("reason") or row["status"]
            table.add_row(row["source"], f"[red]{row['status']}[/]", f"[red]{why}[/]")
            table.add_section()
            continue
        for index, r in enumerate(row["renditions"]):
            first = index == 0
            table.add_row(
                row["source"] if first else "",
                row["format"] if first else "",
                f"{row['width']}x{row['height']} {human_bytes(row['bytes'])}" if first else "",
                f"{r['name']} {r['width']}x{r['height']}",
                human_bytes(r["bytes"]),
                saving(r["bytes"], row["bytes"]),
                f"{row['latency_ms']} ms" if first else "",
            )
        table.add_section()
    console.print(table)
    console.print(
        f"{summary['images']} images in {summary['seconds']} s ({summary['images_per_s']} images/s)"
        f": {summary['processed']} processed, {summary['failed']} failed, {summary['dlq']} in DLQ,"
        f" {summary['unaccounted']} unaccounted; latency p50 {summary['p50_latency_ms']:.0f} ms,"
        f" p95 {summary['p95_latency_ms']:.0f} ms"
    )
    console.print(f"renditions and contact sheet: {out / 'index.html'}")
