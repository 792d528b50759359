"""`imgpipe backfill s3://BUCKET[/PREFIX] --queue-url URL`: enqueue existing keys.

Sends one S3-event-shaped message per image (the backfill contract), from a bucket listing,
a key file (--from-file, `-` for stdin) or an S3 Inventory manifest (--inventory). With
--state FILE a rerun after Ctrl-C or a crash continues where the last one stopped.

Before anything is listed (--dry-run too), the queue's tags say which buckets the process
function may read: the stack's raw bucket and its BackfillSourceBuckets parameter. Any other
bucket is refused, since each of its images would be recorded FAILED access_denied.

Exit codes: 0 done, 1 some keys failed (see the failures file) or the run hit an error,
2 bad arguments or a refused bucket, 130 interrupted (the state is saved; rerun to continue).
"""

import argparse
import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from core.imaging import SpecError, parse_renditions, rendering_profile
from core.settings import Settings, SettingsError
from infra.backfill.filters import Filters
from infra.backfill.options import (
    MAX_DEFAULT_PROCESSES,
    REPROCESS_CHOICES,
    BackfillError,
    Options,
    default_processes,
    parse_s3_url,
    parse_size,
    parse_suffixes,
    parse_time,
)
from infra.backfill.summary import Snapshot, Summary
from infra.commands.arguments import bounded, positive
from infra.commands.aws_errors import describe
from infra.console import error, error_console, styled, warning

if TYPE_CHECKING:
    from infra.backfill.run import Backfill

EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="enqueue existing keys (listing, key file or S3 Inventory)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def _typed(parse: Any, name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = name
    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        metavar="s3://BUCKET[/PREFIX]",
        help="the bucket to backfill (optional with --inventory: the manifest's sourceBucket)",
    )
    parser.add_argument("--queue-url", help="the jobs queue (default: $IMGPIPE_QUEUE_URL)")
    _add_source_arguments(parser)
    _add_filter_arguments(parser)
    _add_throughput_arguments(parser)
    _add_resume_arguments(parser)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (default: list the bucket)")
    exclusive = source.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--from-file", metavar="FILE", help="one key per line (not URL-encoded); '-' for stdin"
    )
    exclusive.add_argument(
        "--inventory",
        metavar="MANIFEST",
        help="an S3 Inventory manifest.json (s3://... or a local path) with CSV(.gz) files",
    )
    source.add_argument(
        "--no-head",
        dest="head",
        action="store_false",
        help="do not HeadObject keys that come without size/ETag/date (they are sent with "
        "size 0 and no ETag; the handler then fetches whatever is there)",
    )


def _add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    filters = parser.add_argument_group("filters")
    filters.add_argument(
        "--suffix",
        action="append",
        metavar="EXT[,EXT...]",
        help="key suffixes to send, case-insensitive; repeatable; '*' for every key "
        "(default: .jpg .jpeg .jpe .png .gif .webp .heic .heif .avif)",
    )
    filters.add_argument(
        "--modified-after",
        type=_typed(parse_time, "time"),
        metavar="ISO",
        help="only objects modified at or after this time (naive times are UTC)",
    )
    filters.add_argument(
        "--modified-before",
        type=_typed(parse_time, "time"),
        metavar="ISO",
        help="only objects modified before this time",
    )
    filters.add_argument(
        "--min-size",
        type=_typed(parse_size, "size"),
        metavar="SIZE",
        help="only objects of at least SIZE bytes (1024, 10KB, 5MiB)",
    )
    filters.add_argument(
        "--max-size", type=_typed(parse_size, "size"), metavar="SIZE", help="at most SIZE bytes"
    )
    filters.add_argument(
        "--skip-processed",
        action="store_true",
        help="skip keys the images table has as PROCESSED with the same ETag and the current "
        "rendering profile (so images rendered with an older preset or engine are sent)",
    )
    filters.add_argument(
        "--reprocess",
        choices=REPROCESS_CHOICES,
        help="what to render again: 'outdated' sends only keys PROCESSED with another profile "
        "than the current one; 'all' sends every key, rendered again even when up to date",
    )
    filters.add_argument(
        "--renditions",
        metavar="PRESET|JSON",
        help="the process function's IMGPIPE_RENDITIONS, which the current profile is computed "
        "from (default: $IMGPIPE_RENDITIONS, else 'default')",
    )
    filters.add_argument(
        "--table",
        help="the images table for --skip-processed and --reprocess outdated "
        "(default: $IMGPIPE_TABLE)",
    )


def _add_throughput_arguments(parser: argparse.ArgumentParser) -> None:
    throughput = parser.add_argument_group("throughput and retries")
    throughput.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="concurrent senders in all processes (default 8)",
    )
    throughput.add_argument(
        "--processes",
        type=int,
        metavar="N",
        default=default_processes(),
        help="sender processes, this one included; --concurrency is split between them, "
        "a --dry-run uses one "
        f"(default: the CPUs, at most {MAX_DEFAULT_PROCESSES}: {default_processes()})",
    )
    throughput.add_argument(
        "--head-concurrency",
        type=int,
        metavar="N",
        default=32,
        help="concurrent HeadObject calls (default 32)",
    )
    throughput.add_argument(
        "--max-rate", type=positive(float), metavar="N", help="at most N messages per second"
    )
    throughput.add_argument(
        "--page-size",
        type=bounded(int, 1, 1000),
        metavar="N",
        default=1000,
        help="keys per ListObjectsV2 page, the unit of resume for a listing (default 1000)",
    )
    throughput.add_argument(
        "--retries",
        type=bounded(int, 0),
        metavar="N",
        default=6,
        help="retries of a failed entry, with backoff, before it goes to the failures file "
        "(default 6)",
    )


def _add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    resume = parser.add_argument_group("resume and output")
    resume.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="record the position here; rerun with the same file to continue",
    )
    resume.add_argument(
        "--state-interval",
        type=bounded(float, 0),
        default=2.0,
        metavar="S",
        help="seconds between saves",
    )
    resume.add_argument(
        "--failures",
        type=Path,
        metavar="FILE",
        help="JSON lines of keys that could not be sent "
        "(default: STATE.failures.jsonl, or ./imgpipe-backfill-failures.jsonl); "
        "re-send them with: jq -r .key FILE | imgpipe backfill s3://BUCKET --from-file -",
    )
    resume.add_argument(
        "--dry-run", action="store_true", help="count and sample what would be sent"
    )
    resume.add_argument(
        "--sample", type=bounded(int, 0), default=10, metavar="N", help="keys sampled by --dry-run"
    )
    resume.add_argument("--no-progress", action="store_true", help="no progress bar")
    resume.add_argument("--json", action="store_true", help="print the summary as JSON")


def options_from_args(args: argparse.Namespace) -> Options:
    if args.target:
        bucket, prefix = parse_s3_url(args.target)
    elif args.inventory:
        bucket, prefix = "", ""
    else:
        raise BackfillError("s3://BUCKET[/PREFIX] is required (unless --inventory is given)")
    failures = args.failures
    if failures is None:
        failures = (
            args.state.with_name(args.state.name + ".failures.jsonl")
            if args.state
            else Path("imgpipe-backfill-failures.jsonl")
        )
    reads_table = args.skip_processed or args.reprocess == "outdated"
    table = args.table or (_setting("table") if reads_table else "")
    return Options(
        bucket=bucket,
        queue_url=args.queue_url or _setting("queue_url"),
        filters=Filters(
            prefix=prefix,
            suffixes=parse_suffixes(args.suffix),
            modified_after=args.modified_after,
            modified_before=args.modified_before,
            min_size=args.min_size,
            max_size=args.max_size,
        ),
        head=args.head,
        skip_processed=args.skip_processed,
        reprocess=args.reprocess,
        profile=_profile(args.renditions) if reads_table else "",
        table=table or None,
        concurrency=args.concurrency,
        head_concurrency=args.head_concurrency,
        processes=args.processes,
        max_rate=args.max_rate,
        retries=args.retries,
        state_path=args.state,
        state_interval=args.state_interval,
        failures_path=failures,
        dry_run=args.dry_run,
        sample_size=args.sample,
        page_size=args.page_size,
    )


def _profile(renditions: str | None) -> str:
    """The rendering profile of ``--renditions``, else of the environment's setting."""
    try:
        if renditions is not None:
            return rendering_profile(parse_renditions(renditions))
        return Settings.from_env().profile
    except (SettingsError, SpecError) as exc:
        raise BackfillError(str(exc)) from exc


def _setting(name: str) -> str:
    """The ``IMGPIPE_*`` setting that is the default of the option of that name (read only
    when the option is missing and needed)."""
    try:
        return str(getattr(Settings.from_env(), name))
    except SettingsError as exc:
        raise BackfillError(str(exc)) from exc


def prepare(args: argparse.Namespace, clients: Any = None) -> "Backfill":
    """The configured run (sources, clients, state), or BackfillError."""
    # Deferred: boto3, botocore and multiprocessing take about 1 s to import, which every
    # `imgpipe` command would pay (the CLI imports each command module to build its parser).
    from infra.backfill.clients import make_clients
    from infra.backfill.inventory import load_manifest
    from infra.backfill.preflight import check_options, preflight
    from infra.backfill.run import Backfill, build_source

    options = options_from_args(args)
    if not options.bucket and args.inventory:
        clients = clients or make_clients(options)
        options.bucket = load_manifest(args.inventory, clients.s3).source_bucket
        if not options.bucket:
            raise BackfillError("the manifest names no sourceBucket; pass s3://BUCKET")
    factory = None if clients else make_clients  # injected clients stay in this process
    clients = clients or make_clients(options)
    source = build_source(options, clients, from_file=args.from_file, inventory=args.inventory)
    check_options(options, source)
    for problem in preflight(options, clients):
        warning(problem)
    return Backfill(options, source, clients, factory)


def run(args: argparse.Namespace, clients: Any = None) -> int:
    # deferred: botocore.exceptions costs about 28 ms (see prepare)
    from botocore.exceptions import NoCredentialsError, NoRegionError

    try:
        backfill = prepare(args, clients)
    except BackfillError as exc:
        error(exc)
        return 2
    except (NoRegionError, NoCredentialsError) as exc:  # raised as the clients are made
        error(describe(exc))
        return 2
    received: list[int] = []
    restore = _install_signals(backfill, received)
    try:
        summary = _run_with_progress(backfill, show=not args.no_progress)
    finally:
        restore()
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, default=str))
    if summary.interrupted:
        return 128 + received[0] if received else EXIT_INTERRUPTED
    if summary.error or summary.this_run["failed"] or not summary.complete:
        return 1
    return 0


def _install_signals(backfill: "Backfill", received: list[int]) -> Any:
    """First Ctrl-C (or SIGTERM): stop listing, finish in-flight requests, save the state.
    A second one returns at once (the saved position still has no gap)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if backfill.stopping:
            error_console.print(styled("stopping now", "yellow"))
            backfill.abort()
            return
        error_console.print(
            styled("stopping:", "yellow"),
            "finishing in-flight requests and saving the state (again to quit at once)",
        )
        backfill.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _line(snap: Snapshot, dry_run: bool) -> str:
    c = snap.counts
    sent = "would send" if dry_run else "sent"
    parts = [
        f"listed [bold]{c['listed']:,}[/]",
        f"filtered {c['filtered'] + c['skipped_processed'] + c['missing']:,}",
        f"{sent} [green]{c['sent']:,}[/]",
        f"failed [red]{c['failed']:,}[/]" if c["failed"] else "failed 0",
        f"{snap.rate:,.0f} msg/s",
    ]
    if c["retried"]:
        parts.append(f"retried {c['retried']:,}")
    if snap.eta_s is not None:
        minutes, seconds = divmod(int(snap.eta_s), 60)
        parts.append(f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}")
    if snap.stopping:
        parts.append("[yellow]stopping[/]")
    return "  ".join(parts)


def _run_with_progress(backfill: "Backfill", show: bool) -> Summary:
    if not show:
        return backfill.run()
    # Deferred, as is rich.table below: about 50 ms that other commands need not pay.
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    dry_run = backfill.options.dry_run
    with Progress(
        SpinnerColumn(),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[line]}"),
        console=error_console,
        transient=False,
    ) as progress:
        task = progress.add_task("backfill", total=None, line="starting")

        def tick(snap: Snapshot) -> None:
            progress.update(
                task,
                total=snap.bytes_total,
                completed=snap.bytes_read,
                line=_line(snap, dry_run),
            )

        return backfill.run(tick)


def _print_summary(summary: Summary) -> None:
    from rich.table import Table  # deferred (see _run_with_progress): about 35 ms

    state = (
        "dry run"
        if summary.dry_run
        else "complete"
        if summary.complete
        else "interrupted"
        if summary.interrupted
        else "incomplete"
    )
    table = Table(title=f"backfill s3://{summary.bucket} ({state})", title_justify="left")
    table.add_column("")
    table.add_column("this run", justify="right")
    if summary.resumed:
        table.add_column("all runs", justify="right")
    for name in summary.this_run:
        label = "would send" if summary.dry_run and name == "sent" else name.replace("_", " ")
        cells = [f"{summary.this_run[name]:,}"]
        if summary.resumed:
            cells.append(f"{summary.counts[name]:,}")
        table.add_row(label, *cells)
    table.add_row("elapsed", f"{summary.elapsed_s:,.1f} s")
    table.add_row("rate", f"{summary.rate_per_s:,.0f} msg/s")
    error_console.print(table)
    if summary.sample:
        error_console.print(styled("sample", "bold"))
        for entry in summary.sample:
            line = f"  {entry['key']}  {entry['size']}  {entry['last_modified']}"
            error_console.print(line, soft_wrap=True)
    if summary.failures_file:
        error_console.print(styled("failed keys:", "red"), summary.failures_file, soft_wrap=True)
    if summary.error:
        error(summary.error)
    if summary.interrupted and summary.state_file:
        error_console.print(f"state saved to {summary.state_file}; rerun to continue")
