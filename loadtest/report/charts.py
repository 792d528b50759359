"""The report's charts as PNG: latency CDF, the timeline (throughput, queue depth, CPU), the
stage breakdown and the outcomes. Drawn on matplotlib figures directly, without pyplot's
global state."""

import io
import statistics
from collections.abc import Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.catalog import Status
from loadtest.analysis import CPU_TARGET
from loadtest.image_rows import ImageRow
from loadtest.sampling import Sample
from loadtest.stats import PERCENTILES, ThroughputBin, throughput_series
from loadtest.summary import IN_RUN_SERIES, LATENCY_LABELS, Summary

CHART_TITLES = {
    "latency_cdf": "Latency CDF",
    "timeline": "Throughput, queue depth and CPU over time",
    "stages": "Stage breakdown",
    "errors": "Outcomes and errors",
}
STAGE_COLOURS = {
    "queue wait": "#9e9e9e",
    "fetch": "#4c78a8",
    "decode": "#f58518",
    "render": "#54a24b",
    "encode": "#e45756",
    "store": "#72b7b2",
    "other": "#b279a2",
}


def render_charts(
    rows: Sequence[ImageRow], summary: Summary, series: Sequence[Sample]
) -> dict[str, bytes]:
    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        return {
            "latency_cdf": _latency_chart(rows, summary),
            "timeline": _timeline_chart(rows, series, summary),
            "stages": _stages_chart(summary),
            "errors": _errors_chart(summary),
        }


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _latency_chart(rows: Sequence[ImageRow], summary: Summary) -> bytes:
    figure = Figure(figsize=(10, 4.2))
    axis = figure.subplots()
    processed = [r for r in rows if not r.warmup and r.status == Status.PROCESSED]
    for name in IN_RUN_SERIES:
        values = sorted(v for r in processed if (v := getattr(r, f"{name}_ms")) is not None)
        if not values:
            continue
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        axis.step([v / 1000 for v in values], fractions, where="post", label=LATENCY_LABELS[name])
    e2e = summary.latency_ms.e2e
    for name, _ in PERCENTILES:
        value = getattr(e2e, name)
        if value is None:
            continue
        axis.axvline(value / 1000, color="#555", linestyle=":", linewidth=0.8)
        axis.annotate(
            f"e2e {name} {value / 1000:.2f} s",
            (value / 1000, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="#333",
            rotation=90,
            ha="right",
            va="top",
            xytext=(-2, -3),
            textcoords="offset points",
        )
    axis.set_xlabel("seconds")
    axis.set_ylabel("fraction of images")
    axis.set_ylim(0, 1.01)
    axis.set_xlim(left=0)
    axis.legend(loc="lower right")
    axis.set_title(f"Latency CDF ({len(processed)} processed images)")
    return _png(figure)


def _timeline_chart(rows: Sequence[ImageRow], series: Sequence[Sample], summary: Summary) -> bytes:
    embedded = summary.run.embedded
    count = 3 if embedded else 2
    figure = Figure(figsize=(10, 2.6 * count))
    axes = figure.subplots(count, 1, sharex=True)
    _throughput_panel(axes[0], throughput_series(rows))
    _depth_panel(axes[1], series)
    if embedded:
        _cpu_panel(axes[2], series, summary.resources.cores)
    axes[-1].set_xlabel("seconds since the start of the run")
    return _png(figure)


def _rolling(values: Sequence[float], width: int = 5) -> list[float]:
    """The mean of each value and the ``width - 1`` before it."""
    return [statistics.fmean(values[max(0, i - width + 1) : i + 1]) for i in range(len(values))]


def _throughput_panel(top: Axes, bins: Sequence[ThroughputBin]) -> None:
    if bins:
        times = [b.t for b in bins]
        middles = [t + 0.5 for t in times]
        rates = [b.images_per_s for b in bins]
        top.bar(times, rates, width=1.0, align="edge", color="#9ecae1", label="images/s (1 s bins)")
        top.plot(middles, _rolling(rates), color="#08519c", label="images/s (5 s mean)")
        top.step(
            [*times, times[-1] + 1],
            [bins[0].sent_per_s, *[b.sent_per_s for b in bins]],
            where="pre",
            color="#333",
            linestyle="--",
            linewidth=0.9,
            label="sent/s (offered load)",
        )
        mb = top.twinx()
        mb_rolling = _rolling([b.mb_per_s for b in bins])
        mb.plot(middles, mb_rolling, color="#e6550d", linewidth=1, label="source MB/s (5 s mean)")
        mb.set_ylabel("source MB/s", color="#e6550d")
        mb.set_ylim(bottom=0)
        mb.grid(False)
        handles = top.get_legend_handles_labels()
        extra = mb.get_legend_handles_labels()
        top.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=7)
    top.set_ylabel("images/s")
    top.set_title("Throughput (completions by finished_at)")


def _depth_panel(axis: Axes, series: Sequence[Sample]) -> None:
    times = [s.t for s in series]
    axis.plot(
        times,
        [s.depth or 0 for s in series],
        color="#756bb1",
        label="queue depth (visible + in flight)",
    )
    axis.plot(
        times,
        [s.in_flight or 0 for s in series],
        color="#bcbddc",
        linestyle="--",
        label="harness: sent, not yet accounted",
    )
    axis.set_ylabel("messages")
    axis.set_ylim(bottom=0)
    axis.legend(loc="upper left", fontsize=7)
    axis.set_title("Queue depth")


def _cpu_panel(cpu: Axes, series: Sequence[Sample], cores: int) -> None:
    layers = [
        ("workers", [100 * (s.workers_util or 0) for s in series], "#31a354"),
        ("moto", [100 * (s.emulator_util or 0) for s in series], "#de2d26"),
        ("harness", [100 * (s.harness_util or 0) for s in series], "#fd8d3c"),
        ("other processes", [100 * (s.other_util or 0) for s in series], "#bdbdbd"),
    ]
    # step "pre": a sample covers the interval that ends at its time, the first from 0
    cpu.stackplot(
        [0.0, *[s.t for s in series]],
        *[[v[0], *v] if v else [] for _, v, _ in layers],
        labels=[x[0] for x in layers],
        colors=[x[2] for x in layers],
        alpha=0.85,
        step="pre",
    )
    cpu.axhline(100 * CPU_TARGET, color="#333", linestyle=":", linewidth=0.8)
    cpu.set_ylim(0, 105)
    cpu.set_ylabel(f"% of {cores} cores")
    cpu.legend(loc="lower left", fontsize=7, ncol=4)
    cpu.set_title("CPU utilisation (dotted: 85% target)")


def _stages_chart(summary: Summary) -> bytes:
    groups = {"all": summary.stages_ms} | {
        label: g.stages_ms for label, g in summary.by_size.items()
    }
    labels = list(groups)
    figure = Figure(figsize=(10, 1.2 + 0.6 * len(groups)))
    axis = figure.subplots()
    widest = max(1e-9, max(sum((v or 0.0) / 1000 for v in groups[g].values()) for g in labels))
    left = [0.0] * len(labels)
    for stage, colour in STAGE_COLOURS.items():
        widths = [(groups[g].get(stage) or 0.0) / 1000 for g in labels]
        axis.barh(labels, widths, left=left, color=colour, label=stage)
        for index, width in enumerate(widths):
            if width > 0.04 * widest:
                axis.text(
                    left[index] + width / 2,
                    index,
                    f"{width * 1000:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axis.invert_yaxis()
    axis.set_xlabel("seconds per image (mean); labels in ms")
    axis.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 / len(labels) ** 0.5 - 0.12),
        fontsize=8,
        ncol=len(STAGE_COLOURS),
        frameon=False,
    )
    axis.set_title("Where an image's time goes: queue wait, then the pipeline stages")
    return _png(figure)


def _errors_chart(summary: Summary) -> bytes:
    outcomes = {Status.PROCESSED.value: summary.accounting.processed} | dict(
        sorted(summary.errors.items())
    )
    figure = Figure(figsize=(10, 1.0 + 0.4 * len(outcomes)))
    axis = figure.subplots()
    colours = ["#31a354" if k == Status.PROCESSED else "#de2d26" for k in outcomes]
    bars = axis.barh(list(outcomes), list(outcomes.values()), color=colours)
    axis.bar_label(bars, padding=3, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("images")
    failures = sum(v for k, v in outcomes.items() if k != Status.PROCESSED)
    axis.set_title("Outcomes: " + ("no errors" if not failures else f"{failures} not processed"))
    axis.set_xlim(0, max(outcomes.values() or [1]) * 1.12 + 1)
    return _png(figure)
