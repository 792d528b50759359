"""`imgpipe bench CORPUS_DIR`: the engine against naive Pillow and the libvips peers (pyvips
and sharp, when installed: `make bench-peers`) in one run, one core per image."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from infra.commands.arguments import bounded
from infra.console import console, error, error_console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark the engine against baselines", description=__doc__
    )
    parser.add_argument("corpus", type=Path, metavar="CORPUS_DIR")
    parser.add_argument(
        "--repeat", type=bounded(int, 1), default=3, help="runs per image (median taken)"
    )
    parser.add_argument(
        "--warmup",
        type=bounded(int, 0),
        default=0,
        help="untimed runs per image first, in the same process: 2 reach a warm Lambda's "
        "steady state (the engine's second image still grows the heap) rather than a fresh "
        "process's first image (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Deferred: every command module is imported to build the parser, and these take about
    # 130 ms (rich.progress, and the baselines' modules) that the other commands need not pay.
    from rich.progress import Progress

    from loadtest.bench import available_strategies, corpus_files, run_bench, summarise

    files = corpus_files(args.corpus) if args.corpus.is_dir() else []
    if not files:
        error(f"no images found in {args.corpus}")
        return 2
    strategies = available_strategies()
    samples = []
    with Progress(console=error_console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(files) * len(strategies))
        for sample in run_bench(files, strategies, args.repeat, args.warmup):
            samples.append(sample)
            progress.advance(task)
    summary = summarise(samples, strategies)
    if args.json:
        print(json.dumps({"samples": [asdict(s) for s in samples], "summary": summary}, indent=2))
    else:
        _print(samples, summary, strategies)
    return 0


def _print(samples: list[Any], summary: dict[str, Any], strategies: list[str]) -> None:
    from rich.table import Table  # deferred (see run): about 40 ms

    table = Table(title="per image (median ms, CPU ms, output KB, peak RSS MB, SSIM)")
    table.add_column("file")
    table.add_column("MP", justify="right")
    for strategy in strategies:
        table.add_column(strategy, justify="right")
    by_file: dict[str, dict[str, Any]] = {}
    for s in samples:
        by_file.setdefault(s.file, {"mp": s.megapixels})[s.strategy] = s
    for name, row in by_file.items():
        cells = [
            f"{row[k].median_ms:.0f} ms  {row[k].cpu_ms or 0:.0f} cpu  {row[k].bytes / 1024:.0f} KB  "
            f"{row[k].rss_mb:.0f} MB  {row[k].ssim if row[k].ssim is not None else '-'}"
            for k in strategies
        ]
        table.add_row(name, f"{row['mp']:.1f}", *cells)
    console.print(table)
    for group, block in summary.items():
        totals = Table(title=f"{group}: per strategy", title_justify="left")
        for column in ("strategy", "median ms", "CPU ms", "images/s", "median RSS MB",
                       "max RSS MB", "output bytes", "mean SSIM"):  # fmt: skip
            totals.add_column(column, justify="left" if column == "strategy" else "right")
        for strategy, f in block["strategies"].items():
            ssim = "-" if f["mean_ssim"] is None else f"{f['mean_ssim']:.4f}"
            cpu = "-" if f["median_cpu_ms"] is None else f"{f['median_cpu_ms']:.0f}"
            totals.add_row(strategy, f"{f['median_ms']:.0f}", cpu, f"{f['images_per_s']:.2f}",
                           f"{f['median_rss_mb']:.0f}", f"{f['max_rss_mb']:.0f}",
                           f"{f['output_bytes']:,}", ssim)  # fmt: skip
        console.print(totals)
        ratios = ", ".join(f"{name} {value}" for name, value in block["ratios"].items())
        console.print(f"  ratios (imgpipe vs others): {ratios}")
