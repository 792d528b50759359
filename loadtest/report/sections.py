"""The report's tables, one function a section, shared by the Markdown and the HTML report.

Cells may hold the two bits of Markdown the renderers know: **bold** and `code`.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.stats import Distribution
from loadtest.summary import LATENCY_LABELS, Summary


@dataclass(frozen=True)
class Section:
    title: str
    header: list[str]  # all empty: a table without a header row
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    @property
    def headed(self) -> bool:
        return any(self.header)


def sections(summary: Summary) -> list[Section]:
    found = [
        _run(summary),
        _accounting(summary),
        _latency(summary),
        _by_size(summary),
        _throughput(summary),
        _stages(summary),
        _errors(summary),
        _resources(summary),
        _emulator(summary),
    ]
    if summary.run.embedded:
        found.append(_targets(summary))
    if summary.cost is not None:
        found.append(_cost(summary))
    return found


def emulator_verdict(summary: Summary) -> str:
    return f"Emulator bottleneck: {summary.emulator.verdict}"


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _price(value: float) -> str:
    """USD without exponents: 0.0000133334, 0.2, 5."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def _dist(d: Distribution) -> str:
    if not d.n:
        return "-"
    return f"{_fmt(d.p50, 1)} / {_fmt(d.p99, 1)} / {_fmt(d.max, 1)} (n={d.n})"


def _run(summary: Summary) -> Section:
    run = summary.run
    workers = (
        f"{_fmt(run.workers)} processes x {_fmt(run.threads)} thread(s) "
        f"on {run.cores} cores, batch size {_fmt(run.batch_size)}"
    )
    enforced = (
        "-" if run.iam_enforced is None else "yes" if run.iam_enforced else "no (measurement)"
    )
    rows = [
        ["target", run.target],
        ["mode / loop", f"{run.mode} / {run.loop}"],
        ["images", f"{run.measured} measured + {run.warmup} warm-up"],
        ["workers", workers],
        ["IAM and SigV4 enforced", enforced],
        ["started", run.started],
        ["wall time", f"{run.wall_s} s"],
        ["command", f"`{_fmt(run.command)}`"],
    ]
    return Section("Run", ["", ""], rows)


def _accounting(summary: Summary) -> Section:
    acc = summary.accounting
    verdict = "all accounted for" if acc.unaccounted == 0 else "**KEYS NOT ACCOUNTED FOR**"
    notes = []
    if acc.unaccounted_keys:
        notes.append(f"Unaccounted keys: {', '.join(acc.unaccounted_keys[:50])}")
    counts = [acc.sent, acc.processed, acc.failed, acc.dlq, acc.unaccounted]
    return Section(
        f"Accounting: {verdict}",
        ["sent", "processed", "failed", "DLQ", "unaccounted"],
        [[str(count) for count in counts]],
        notes,
    )


def _latency(summary: Summary) -> Section:
    rows = [
        [LATENCY_LABELS[name], *(_fmt(v) for v in (d.n, d.p50, d.p90, d.p99, d.max, d.mean))]
        for name, d in summary.latency_ms.by_name().items()
        if d.n
    ]
    return Section(
        "Latency (ms, processed images, nearest-rank percentiles)",
        ["latency (ms)", "n", "p50", "p90", "p99", "max", "mean"],
        rows,
    )


def _by_size(summary: Summary) -> Section:
    rows = [
        [
            label,
            str(g.n),
            _fmt(g.source_mb_mean, 2),
            _fmt(g.e2e_p50),
            _fmt(g.processing_p50),
            _fmt(g.engine_p50),
        ]
        for label, g in summary.by_size.items()
    ]
    return Section(
        "By size class",
        ["size", "n", "source MB", "e2e p50 ms", "processing p50 ms", "engine p50 ms"],
        rows,
    )


def _throughput(summary: Summary) -> Section:
    thr = summary.throughput
    row = [
        str(thr.images),
        _fmt(thr.span_s, 1),
        _fmt(thr.images_per_s, 2),
        _fmt(thr.source_mb_per_s, 2),
        _fmt(thr.peak_5s_images_per_s, 2),
    ]
    return Section(
        "Throughput",
        ["images", "span s", "images/s", "source MB/s", "peak 5 s images/s"],
        [row],
        ["Span: the first measured image sent to the last one finished."],
    )


def _stages(summary: Summary) -> Section:
    stages = summary.stages_ms
    total = sum(v for v in stages.values() if v) or 1.0
    return Section(
        "Stage breakdown (mean per processed image)",
        ["stage", "mean ms", "share"],
        [[name, _fmt(v, 1), _pct((v or 0) / total)] for name, v in stages.items()],
        ["'other': processing time outside the five stages (catalog read, bookkeeping)."],
    )


def _errors(summary: Summary) -> Section:
    rows = [[k, str(v)] for k, v in sorted(summary.errors.items())] or [["none", "0"]]
    return Section("Errors", ["status / reason", "count"], rows)


def _resources(summary: Summary) -> Section:
    res = summary.resources
    quiet = f"{res.quiet_samples} of {res.busy_samples} s"
    depth = f"{_fmt(res.queue_depth_peak)} / {_fmt(res.queue_depth_mean_busy, 1)}"
    rows = [
        [
            "worker CPU while the queue was non-empty",
            _pct(res.workers_util_busy),
            f"of {res.cores} cores",
        ],
        ["worker CPU over the whole run", _pct(res.workers_util_run), ""],
        [
            "worker CPU while non-empty, in seconds when other processes used < 5%",
            _pct(res.workers_util_quiet),
            quiet,
        ],
        ["moto CPU in those quiet seconds", _pct(res.emulator_util_quiet), ""],
        ["moto (emulator) CPU while non-empty", _pct(res.emulator_util_busy), ""],
        [
            "workers + moto (the whole embedded stack) while non-empty",
            _pct(res.stack_util_busy),
            "",
        ],
        ["harness CPU while non-empty", _pct(res.harness_util_busy), ""],
        ["other processes on the machine", _pct(res.other_util_busy), ""],
        ["workers inside the handler", _pct(res.busy_fraction_busy), "of worker time"],
        [
            "worker CPU per processed image",
            _fmt(res.worker_cpu_ms_per_image, 0, " ms"),
            "all worker CPU / images",
        ],
        ["peak RSS of one worker (VmHWM)", _fmt(res.worker_peak_rss_mb, 0, " MB"), ""],
        ["peak RSS of all workers", _fmt(res.workers_total_rss_peak_mb, 0, " MB"), ""],
        ["queue depth peak / mean while non-empty", depth, "visible + in flight"],
    ]
    note = (
        "Utilisation = CPU seconds / (wall seconds x cores), from /proc every second; "
        "workers include their children. 'Non-empty' = sampled intervals with a queue "
        "depth above zero at both ends."
    )
    return Section(
        "Resources",
        ["figure", "value", ""],
        rows if summary.run.embedded else rows[-1:],
        [note],
    )


def _emulator(summary: Summary) -> Section:
    emu = summary.emulator
    rows = [
        ["queue depth probe (GetQueueAttributes)", _dist(emu.depth_probe_ms)],
        ["PutObject from the harness", _dist(emu.put_object_ms)],
        ["SendMessageBatch from the harness", _dist(emu.send_batch_ms)],
        ["table poll (BatchGetItem)", _dist(emu.table_poll_ms)],
        ["PutObject throughput", _fmt(emu.put_mb_per_s, 1, " MB/s")],
        ["S3 fetch + store share of processing", _pct(emu.s3_share_of_processing)],
        ["moto CPU per image", _fmt(emu.moto_cpu_ms_per_image, 0, " ms")],
        ["CPU left for the workers (after moto, harness, others)", _pct(emu.cpu_left_for_workers)],
        ["share of it the workers used", _pct(emu.workers_share_of_cpu_left)],
    ]
    return Section(
        "Emulator (moto)",
        ["call", "p50 / p99 / max ms"],
        rows,
        [f"**{emulator_verdict(summary)}**"],
    )


def _targets(summary: Summary) -> Section:
    ok, res = summary.acceptance, summary.resources
    rows = [
        [
            "worker CPU >= 85% of the cores while the queue is non-empty",
            _pct(ok.cpu_util),
            "met" if ok.cpu_ok else "NOT met",
        ],
        [
            "the same, in the seconds when other processes used < 5% of the CPU",
            _pct(res.workers_util_quiet),
            f"{res.quiet_samples} s",
        ],
        [
            "workers + moto (the emulator shares the cores) while non-empty",
            _pct(res.stack_util_busy),
            "for reference",
        ],
        [
            "e2e p50 <= 3x the engine's median per-image time (in-run engine timings)",
            f"{_fmt(ok.e2e_p50_over_engine_p50, 2)}x",
            "met" if ok.latency_ok else "NOT met",
        ],
        [
            "e2e p50 / engine alone (calibration, idle machine)",
            f"{_fmt(ok.e2e_p50_over_isolated_engine_p50, 2)}x",
            "for reference",
        ],
    ]
    return Section("Targets", ["target", "measured", ""], rows)


def _cost(summary: Summary) -> Section:
    cost = summary.cost
    assert cost is not None
    rows = [
        [
            line.component,
            f"{line.quantity_per_image:.4g} {line.unit}",
            f"${_price(line.unit_price)}",
            f"${line.per_million:,.2f}",
        ]
        for line in cost.lines
    ]
    rows.append(["**total per million images**", "", "", f"**${cost.per_million:,.2f}**"])
    prices = ", ".join(f"{k}={_price(v)}" for k, v in asdict(cost.prices).items())
    return Section(
        "Cost per million images",
        ["component", "per image", "unit price", "per million"],
        rows,
        [
            "Assumptions: " + "; ".join(cost.assumptions) + ".",
            "Prices (override with --price NAME=USD): " + prices,
        ],
    )
