"""`imgpipe reconcile`: compare the raw bucket, the images table and the processed bucket.

Reports three kinds of drift: sources without a result (a raw object with no item, a DELETED
item, or an item of another ETag), results without a source (an item whose raw object is
gone), and renditions that no item references. With --fix it sends the first to the jobs
queue (backfill's messages), marks the second DELETED (deleting their renditions) and deletes
the third. Objects younger than --min-age are left alone: they may be in flight.

Memory stays bounded: the table scan is sorted on disk in runs, then merged with the bucket
listings, which S3 returns sorted. Items of other source buckets (backfill sources) are not
compared with their buckets.

Exit codes: 0 no drift (or every finding fixed), 1 drift left or a fix failed, 2 bad
arguments or an AWS error, 130 interrupted (Ctrl-C; rerun, a run keeps no state).
"""

import argparse
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings, SettingsError
from infra.commands.arguments import bounded
from infra.commands.aws_errors import describe
from infra.commands.signals import stop_signals
from infra.console import error, error_console, styled

if TYPE_CHECKING:
    from infra.reconcile.run import Reconcile, Report

EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="find (and --fix) drift between the raw bucket, the table and the renditions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, setting in (("--raw-bucket", "RAW_BUCKET"), ("--processed-bucket", "OUTPUT_BUCKET"),
                          ("--table", "TABLE"), ("--queue-url", "QUEUE_URL")):  # fmt: skip
        parser.add_argument(flag, help=f"default: $IMGPIPE_{setting}")
    parser.add_argument("--fix", action="store_true", help="repair what is found")
    parser.add_argument("--min-age", type=bounded(float, 0), default=3600.0, metavar="S",
                        help="ignore objects modified less than S seconds ago (default 3600)")  # fmt: skip
    parser.add_argument("--sample", type=bounded(int, 0), default=20, metavar="N",
                        help="findings of each kind listed in the report (default 20)")  # fmt: skip
    parser.add_argument("--failures", type=Path, metavar="FILE",
                        default=Path("imgpipe-reconcile-failures.jsonl"),
                        help="keys --fix could not enqueue (default: %(default)s)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's names on top; all four required
    (the queue only with --fix)."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise ValueError(str(exc)) from exc
    settings = replace(
        settings,
        raw_bucket=args.raw_bucket or settings.raw_bucket,
        output_bucket=args.processed_bucket or settings.output_bucket,
        table=args.table or settings.table,
        queue_url=args.queue_url or settings.queue_url,
    )
    needed = ["raw_bucket", "output_bucket", "table"] + (["queue_url"] if args.fix else [])
    try:
        settings.require(*needed)
        settings.check_processing()
    except SettingsError as exc:
        raise ValueError(f"{exc} (or pass --raw-bucket, --processed-bucket, --table, "
                         "--queue-url)") from exc  # fmt: skip
    return settings


def prepare(args: argparse.Namespace, stop: threading.Event) -> "Reconcile":
    # Deferred: boto3 and botocore take about 1 s to import, which every `imgpipe` command
    # would pay (the CLI imports each command module to build its parser).
    import boto3

    from core.aws import DynamoCatalog, S3Storage, dynamodb_client, s3_client
    from infra.backfill.clients import Clients
    from infra.backfill.options import Options
    from infra.backfill.sender import Sender
    from infra.reconcile.run import Fixers, Reconcile

    settings = settings_from_args(args)
    s3, dynamodb = s3_client(), dynamodb_client()
    fixers = None
    if args.fix:
        options = Options(settings.raw_bucket, settings.queue_url, head=False,
                          failures_path=args.failures)  # fmt: skip
        sender = Sender(options, Clients(s3, boto3.client("sqs")), stop, threading.Event(), None)
        fixers = Fixers(sender, S3Storage(s3), DynamoCatalog(dynamodb, settings.table))
    return Reconcile(settings, s3, dynamodb, fixers=fixers, min_age_s=args.min_age,
                     sample_size=args.sample, stop=stop)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    # deferred: botocore.exceptions costs about 28 ms (see prepare)
    from botocore.exceptions import BotoCoreError, ClientError

    with stop_signals() as stop:
        try:
            reconcile = prepare(args, stop)
            report = _run_with_progress(reconcile, show=not args.no_progress)
        except ValueError as exc:
            error(exc)
            return 2
        except (BotoCoreError, ClientError) as exc:
            error(describe(exc))
            return 2
    _print_report(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    if report.interrupted:
        return EXIT_INTERRUPTED
    left = report.counts["fix_failed"] if report.fix else report.drift
    return 1 if left else 0


def _run_with_progress(reconcile: "Reconcile", show: bool) -> "Report":
    if not show:
        return reconcile.run()
    # Deferred: about 50 ms that other commands need not pay.
    from rich.progress import Progress, SpinnerColumn, TextColumn

    names = {"scan": "scanning the table", "raw": "comparing the raw bucket",
             "cdn": "comparing the processed bucket"}  # fmt: skip
    with Progress(SpinnerColumn(), TextColumn("{task.fields[line]}"), console=error_console,
                  transient=False) as progress:  # fmt: skip
        task = progress.add_task("reconcile", total=None, line="starting")

        def tick(phase: str, counts: dict[str, int]) -> None:
            drift = sum(counts[k] for k in ("source_without_result", "result_without_source",
                                              "unreferenced_rendition"))  # fmt: skip
            line = (f"{names[phase]}: items {counts['items_scanned']:,}  raw "
                    f"{counts['raw_listed']:,}  renditions {counts['processed_listed']:,}  "
                    f"drift {drift:,}")  # fmt: skip
            progress.update(task, line=line + ("  stopping" if reconcile.stop.is_set() else ""))

        return reconcile.run(tick)


def _print_report(report: "Report") -> None:
    from rich.table import Table  # deferred (see _run_with_progress): about 35 ms

    state = "complete" if report.complete else "interrupted"
    title = f"reconcile s3://{report.raw_bucket} with {report.table} ({state})"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for name, count in report.counts.items():
        table.add_row(name.replace("_", " "), f"{count:,}")
    error_console.print(table)
    for kind, findings in report.samples.items():
        if findings:
            error_console.print(styled(kind.replace("_", " "), "bold"))
        for finding in findings:
            error_console.print(f"  {finding['key']}  ({finding['why']})", soft_wrap=True)
