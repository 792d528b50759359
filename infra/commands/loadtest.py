"""`imgpipe loadtest`: drive the pipeline end to end and report throughput, latency
percentiles, stage costs, CPU, and the cost per million images, with proof nothing was lost.

By default it starts the embedded stack (moto on loopback and the worker processes); with
--stack it drives a deployed stack found through its CloudFormation outputs.
`imgpipe loadtest compare RUN_A RUN_B` compares two runs and marks the regressions.
"""

# The harness and the reports are imported inside the functions that use them: infra/cli.py
# imports every command module to build its parser, and they cost 1-5 s (boto3, psutil,
# matplotlib, Jinja2; `python -X importtime`) that `imgpipe render` must not pay.

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.commands.arguments import bounded
from infra.commands.loadtest_arguments import add_run_arguments
from infra.console import console, error, error_console, styled, warning

if TYPE_CHECKING:
    from loadtest.cost import Prices
    from loadtest.run import LoadOptions, LoadRun, RunData, StackInfo
    from loadtest.summary import Summary
    from loadtest.workload import SizeClass, Source, Workload


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="load-test the pipeline and write JSON, Markdown and HTML reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.set_defaults(run=run)
    nested = parser.add_subparsers(dest="loadtest_command", metavar="{compare}")
    compare = nested.add_parser(
        "compare",
        help="compare two runs (ratios B/A, regressions marked)",
        description="Print the ratio B/A of every figure of two runs and mark regressions: "
        "latency, time, cost or memory up, or throughput down, by more than the threshold.",
    )
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="run folder or results.json")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="run folder or results.json")
    compare.add_argument(
        "--threshold", type=bounded(float, 0), default=0.10, help="regression threshold"
    )
    compare.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 when a regression is marked"
    )
    compare.add_argument("--json", action="store_true", help="print machine-readable JSON")
    compare.set_defaults(run=run_compare)


def _prices(pairs: list[str]) -> "Prices":
    from loadtest.cost import Prices  # deferred (see the top): about 20 ms

    values: dict[str, float] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in Prices.names():
            raise ValueError(f"unknown price {name!r}; choose from {', '.join(Prices.names())}")
        values[name] = float(value)
    return Prices(**values)


def _command_line() -> str:
    argv = sys.argv[1:]
    if argv and argv[0] == "loadtest":
        argv = argv[1:]
    return " ".join(["imgpipe", "loadtest", *map(shlex.quote, argv)])


def run(args: argparse.Namespace) -> int:
    # Deferred (see the top): the report alone (matplotlib, Jinja2) costs about 1.7 s.
    from botocore.exceptions import BotoCoreError, ClientError

    from loadtest.calibration import calibrate
    from loadtest.cost import FunctionConfig
    from loadtest.report.outputs import write_reports
    from loadtest.sampling import core_count
    from loadtest.workload import parse_formats, parse_sizes

    try:
        prices = _prices(args.price)
        sizes = parse_sizes(args.sizes)
        formats = parse_formats(args.formats)
    except ValueError as exc:
        error(exc)
        return 2
    if args.workers is None:
        args.workers = core_count() + 1
    if args.corpus is not None and not args.corpus.is_dir():
        error(f"{args.corpus} is not a folder")
        return 2
    out = args.out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    pool = _build_pool(args, sizes, formats)
    if not pool:
        error(f"no images in {args.corpus}")
        return 2
    if not args.no_calibrate:
        error_console.print(f"timing the engine alone on {min(len(pool), 24)} source image(s)...")
        calibrate(pool)
    try:
        data = _drive(args, pool, sizes, formats)
    except (LookupError, ValueError, RuntimeError, BotoCoreError, ClientError) as exc:
        error(exc)
        return 2
    config = FunctionConfig(
        memory_mb=args.memory_mb,
        architecture=args.architecture,
        compute_scale=args.compute_scale,
        batch_size=args.batch_size,
    )
    summary = write_reports(data, out, config, prices, pool)
    if args.json:
        print(json.dumps({"out": str(out), "summary": summary.to_dict()}, indent=2, default=str))
    else:
        _print_summary(summary, out)
    return 0 if summary.accounting.unaccounted == 0 else 1


def _build_pool(
    args: argparse.Namespace, sizes: "list[SizeClass]", formats: list[tuple[str, float]]
) -> "list[Source]":
    # deferred (see the top): about 170 ms with rich.progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from loadtest.workload import corpus_pool, default_cache_dir, synthetic_pool

    if args.corpus is not None:
        return corpus_pool(args.corpus)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=error_console, transient=True) as progress:
        task = progress.add_task("generating synthetic images (cached)", total=None)

        def show(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return synthetic_pool(
            sizes, formats, args.pool, args.cache_dir or default_cache_dir(), show
        )


def _drive(
    args: argparse.Namespace,
    pool: "list[Source]",
    sizes: "list[SizeClass]",
    formats: list[tuple[str, float]],
) -> "RunData":
    from loadtest.run import LoadOptions  # deferred (see the top): about 290 ms
    from loadtest.workload import Workload

    run_id = datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    synthetic = args.corpus is None
    default_count = (args.synthetic or 100) if synthetic else len(pool)
    concurrency = args.concurrency
    if args.rate is None and concurrency is None:
        concurrency = args.workers * args.threads + 1 if not args.stack else 20
    options = LoadOptions(
        mode=args.mode,
        count=None if args.duration is not None else (args.count or default_count),
        duration_s=args.duration,
        rate=args.rate,
        concurrency=concurrency,
        warmup=args.warmup,
        poll_interval_s=args.poll_interval,
        drain_timeout_s=args.drain_timeout,
        uploaders=args.uploaders,
        source_bucket=args.source_bucket,
        sample_interval_s=args.sample_interval,
    )
    workload = Workload(
        pool,
        run_id,
        sizes if synthetic else None,
        formats if synthetic else None,
        options.warmup,
        args.seed,
    )
    if args.stack:
        return _drive_deployed(args, options, workload)
    return _drive_embedded(args, options, workload)


def _drive_deployed(
    args: argparse.Namespace, options: "LoadOptions", workload: "Workload"
) -> "RunData":
    from infra.commands.environment import applied_env  # deferred (see the top): 300 ms
    from loadtest.run import LoadRun, StackInfo
    from loadtest.targets import target_from_stack

    region = {"AWS_REGION": args.region, "AWS_DEFAULT_REGION": args.region}
    with applied_env(region if args.region else {}):
        target = target_from_stack(args.stack, args.region)
        if options.mode == "enqueue" and not options.source_bucket:
            options.source_bucket = target.raw_bucket
        info = StackInfo(
            _command_line(), options.concurrency, args.rate, "Lambda", "-", target.batch_size
        )
        return _with_progress(LoadRun(target, workload, options), info)


def _drive_embedded(
    args: argparse.Namespace, options: "LoadOptions", workload: "Workload"
) -> "RunData":
    # deferred (see the top): the embedded stack (moto) takes about 1.8 s
    from infra.commands.environment import applied_env
    from infra.local.stack import LocalStack, StackOptions
    from loadtest.run import LoadRun, StackInfo
    from loadtest.targets import target_from_local

    if options.mode == "enqueue" and not options.source_bucket:
        options.source_bucket = "imgpipe-loadtest-src"
    stack_options = StackOptions(
        workers=args.workers,
        batch_window_s=args.batch_window,
        threads_per_worker=args.threads,
        strict=not args.no_iam_enforcement,
        # The process role may read another bucket only through the template's parameter.
        parameters={"BackfillSourceBuckets": options.source_bucket or ""},
    )
    error_console.print("starting the embedded stack (moto on loopback, worker processes)...")
    with (
        applied_env({"IMGPIPE_WORKERS": str(args.threads)}),
        LocalStack(stack_options) as local,
        applied_env(local.client_env()),
    ):
        target = target_from_local(local)
        window = args.batch_window
        info = StackInfo(
            command=_command_line(),
            concurrency=options.concurrency,
            rate=args.rate,
            workers=args.workers,
            threads=args.threads,
            batch_size=target.batch_size,
            iam_enforced=stack_options.strict,
            batch_window_s=local.resources.settings.batching_window if window is None else window,
        )
        return _with_progress(LoadRun(target, workload, options, local), info)


def _with_progress(load: "LoadRun", info: "StackInfo") -> "RunData":
    # deferred (see the top): about 90 ms
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    started = time.monotonic()
    with Progress(*columns, console=error_console, auto_refresh=False) as progress:
        task = progress.add_task("load test", total=load.total, status="")

        def show(run: "LoadRun") -> None:
            counts = run.progress()
            latest = run.sampler.latest if run.sampler else None
            elapsed = max(1e-6, time.monotonic() - started)
            parts = [
                f"{counts.accounted / elapsed:.1f} img/s",
                f"in flight {counts.in_flight}",
                f"depth {latest.depth if latest else '-'}",
            ]
            if latest is not None and latest.workers_util is not None:
                parts.append(f"workers CPU {latest.workers_util:.0%}")
                parts.append(f"moto {latest.emulator_util or 0:.0%}")
            if run.tracker.dead:
                parts.append(f"[red]DLQ {len(run.tracker.dead)}[/]")
            phase = "sending" if run.issuing else "draining"
            progress.update(
                task,
                completed=counts.accounted,
                total=run.total,
                description=f"load test ({phase})",
                status=" · ".join(parts),
            )
            progress.refresh()

        load.on_progress = show
        data = load.execute()
    return replace(data, stack=info)


def _print_summary(summary: "Summary", out: Path) -> None:
    from rich.table import Table  # deferred (see the top): about 35 ms

    acc, thr, res = summary.accounting, summary.throughput, summary.resources
    table = Table(title="imgpipe load test: latency (ms)")
    for column in ("", "n", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="left" if not column else "right")
    for name, d in summary.latency_ms.by_name().items():
        if d.n:
            table.add_row(name, *(str(v) for v in (d.n, d.p50, d.p90, d.p99, d.max)))
    console.print(table)
    console.print(
        f"{acc.sent} sent: {acc.processed} processed, {acc.failed} failed, {acc.dlq} in DLQ, ",
        styled(f"{acc.unaccounted} UNACCOUNTED", "red") if acc.unaccounted else "0 unaccounted",
        sep="",
    )
    console.print(
        f"throughput {thr.images_per_s} images/s, {thr.source_mb_per_s} source MB/s; "
        f"queue depth peak {res.queue_depth_peak}"
    )
    if summary.run.embedded:
        util = res.workers_util_busy
        console.print(
            f"worker CPU while busy {util if util is None else f'{util:.0%}'} of {res.cores} "
            f"cores; e2e p50 = {summary.acceptance.e2e_p50_over_engine_p50}x engine p50; "
            f"emulator bottleneck: {summary.emulator.verdict}"
        )
    if summary.cost is not None:
        console.print(f"estimated cost: ${summary.cost.per_million:,.2f} per million images")
    console.print(f"reports: {out / 'summary.md'}, {out / 'report.html'}, {out / 'results.json'}")


def run_compare(args: argparse.Namespace) -> int:
    from loadtest.compare import compare  # deferred (see the top): about 15 ms

    try:
        result = compare(args.run_a, args.run_b, args.threshold)
    except (OSError, ValueError) as exc:
        error(exc)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from rich.table import Table  # deferred (see the top): about 35 ms

        table = Table(title=f"B/A: {args.run_b} vs {args.run_a}")
        for column in ("figure", "A", "B", "B/A", ""):
            table.add_column(column, justify="left" if column in ("figure", "") else "right")
        for row in result["figures"]:
            mark = (
                styled("REGRESSION", "red")
                if row["regression"]
                else styled("better", "green")
                if row["improvement"]
                else ""
            )
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            table.add_row(row["figure"], _num(row["a"]), _num(row["b"]), ratio, mark)
        console.print(table)
        for text in result["warnings"]:
            warning(text, console)
        count = len(result["regressions"])
        console.print(
            styled(f"{count} regression(s):", "red") if count else "no regressions",
            ", ".join(result["regressions"]),
        )
    return 1 if args.fail_on_regression and result["regressions"] else 0


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.0f}"
