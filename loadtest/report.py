"""Turn a load test's measurements into results.json, summary.md and a self-contained
report.html (matplotlib charts embedded as base64 PNG)."""

import base64
import html
import io
import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.accounting import percentile
from loadtest.cost import CostInputs, Prices, estimate
from loadtest.harness import ENGINE_STAGES, STAGES, RunData, image_samples

CPU_TARGET = 0.85
QUIET_OTHER = 0.05  # other processes below this share of the CPU: a 'quiet' second
LATENCY_TARGET = 3.0  # e2e p50 at most 3x the engine's median per-image time
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
LATENCY_SERIES = (
    ("e2e", "end-to-end (sent -> finished_at)"),
    ("queue_wait", "queue wait (eventTime -> started_at)"),
    ("processing", "processing (started_at -> finished_at)"),
    ("engine", "engine (decode + render + encode)"),
)
STAGE_COLOURS = {
    "queue wait": "#9e9e9e",
    "fetch": "#4c78a8",
    "decode": "#f58518",
    "render": "#54a24b",
    "encode": "#e45756",
    "store": "#72b7b2",
    "other": "#b279a2",
}


# ----------------------------------------------------------------------------- statistics


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, p50, p90, p99 (nearest rank, the shared ``percentile``), max and mean."""
    clean = [float(v) for v in values if v is not None]
    if not clean:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    result: dict[str, float | int | None] = {"n": len(clean)}
    for name, fraction in PERCENTILES:
        result[name] = round(percentile(clean, fraction), 1)
    result["max"] = round(max(clean), 1)
    result["mean"] = round(statistics.fmean(clean), 1)
    return result


def _field(rows: Sequence[dict[str, Any]], name: str) -> list[float]:
    return [float(r[name]) for r in rows if r.get(name) is not None]


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def throughput_series(rows: Sequence[dict[str, Any]], bin_s: float = 1.0) -> list[dict[str, Any]]:
    """Per ``bin_s``: completions (PROCESSED or FAILED, by finished_at) with their source MB,
    and images sent (by the time the upload or enqueue call returned)."""
    done = [r for r in rows if r.get("finished_at") is not None]
    if not done:
        return []
    last = max([r["finished_at"] for r in done] + [r.get("sent_at") or 0.0 for r in rows])
    bins = [
        {"t": i * bin_s, "images": 0, "mb": 0.0, "sent": 0} for i in range(int(last // bin_s) + 1)
    ]
    for row in done:
        index = max(0, int(row["finished_at"] // bin_s))
        bins[index]["images"] += 1
        bins[index]["mb"] += row["source_bytes"] / 1e6
    for row in rows:
        if row.get("sent_at") is not None:
            bins[max(0, int(row["sent_at"] // bin_s))]["sent"] += 1
    for entry in bins:
        entry["images_per_s"] = entry["images"] / bin_s
        entry["sent_per_s"] = entry["sent"] / bin_s
        entry["mb_per_s"] = round(entry["mb"] / bin_s, 3)
        entry["mb"] = round(entry["mb"], 3)
    return bins


def _busy_mask(series: Sequence[dict[str, Any]]) -> list[bool]:
    """Sample intervals during which the queue (visible + in flight) was non-empty."""
    mask = []
    for index, sample in enumerate(series):
        here = (sample.get("depth") or 0) > 0
        before = index == 0 or (series[index - 1].get("depth") or 0) > 0
        mask.append(here and before)
    return mask


def _mean_where(series: Sequence[dict[str, Any]], name: str, mask: Sequence[bool]) -> float | None:
    values = [
        s[name] for s, keep in zip(series, mask, strict=True) if keep and s.get(name) is not None
    ]
    return round(statistics.fmean(values), 4) if values else None


def summarise(
    data: RunData,
    rows: list[dict[str, Any]],
    cost_inputs: dict[str, Any] | None = None,
    prices: Prices | None = None,
) -> dict[str, Any]:
    measured = [r for r in rows if not r["warmup"]]
    processed = [r for r in measured if r.get("status") == "PROCESSED"]
    finished = [r for r in measured if r.get("finished_at") is not None]
    statuses = Counter(str(r.get("status")) for r in rows)
    latency = {name: distribution(_field(processed, f"{name}_ms")) for name, _ in LATENCY_SERIES}
    isolated = [r["isolated_engine_ms"] for r in processed if r.get("isolated_engine_ms")]
    latency["isolated_engine"] = distribution(isolated)

    first_sent = min((r["sent_at"] for r in measured), default=0.0)
    span = max((r["finished_at"] for r in finished), default=first_sent) - first_sent
    source_mb = sum(r["source_bytes"] for r in processed) / 1e6
    bins = throughput_series(rows)
    rolling = [
        statistics.fmean(b["images_per_s"] for b in bins[i : i + 5])
        for i in range(max(0, len(bins) - 4))
    ]

    stages: dict[str, float | None] = {"queue wait": _mean(_field(processed, "queue_wait_ms"))}
    for stage in STAGES:
        stages[stage] = _mean([r["timings_ms"].get(stage, 0.0) for r in processed])
    other = [
        r["processing_ms"] - sum(r["timings_ms"].get(s, 0.0) for s in STAGES)
        for r in processed
        if r.get("processing_ms") is not None
    ]
    stages["other"] = _mean([max(0.0, v) for v in other])
    by_size = {}
    for label in sorted({r["size_class"] for r in processed}, key=_mp_key):
        group = [r for r in processed if r["size_class"] == label]
        by_size[label] = {
            "n": len(group),
            "source_mb_mean": round(statistics.fmean(r["source_bytes"] for r in group) / 1e6, 3),
            "e2e_p50": distribution(_field(group, "e2e_ms"))["p50"],
            "processing_p50": distribution(_field(group, "processing_ms"))["p50"],
            "engine_p50": distribution(_field(group, "engine_ms"))["p50"],
            "stages_ms": {
                "queue wait": _mean(_field(group, "queue_wait_ms")),
                **{s: _mean([r["timings_ms"].get(s, 0.0) for r in group]) for s in STAGES},
                "other": _mean(
                    [
                        max(
                            0.0, r["processing_ms"] - sum(r["timings_ms"].get(s, 0) for s in STAGES)
                        )
                        for r in group
                        if r.get("processing_ms") is not None
                    ]
                ),
            },
        }

    errors = Counter(
        f"FAILED:{r.get('reason')}" if r.get("status") == "FAILED" else str(r["status"])
        for r in rows
        if r.get("status") != "PROCESSED"
    )
    resources = _resources(data)
    emulator = _emulator(data, processed, resources)
    acceptance = _acceptance(latency, resources)
    cost = _cost(processed, data, cost_inputs or {}, prices)
    return {
        "run": {
            "target": data.target.name,
            "embedded": data.target.embedded,
            "region": data.target.region,
            "mode": data.options.mode,
            "loop": _loop(data),
            "started": datetime.fromtimestamp(data.started_at, UTC).isoformat(timespec="seconds"),
            "wall_s": round(data.ended_at - data.started_at, 2),
            "warmup": sum(r["warmup"] for r in rows),
            "measured": len(measured),
            "cores": data.cores,
            **data.stack,
        },
        "accounting": {
            "sent": len(rows),
            "processed": statuses.get("PROCESSED", 0),
            "failed": statuses.get("FAILED", 0),
            "dlq": statuses.get("DLQ", 0),
            "unaccounted": statuses.get("UNACCOUNTED", 0),
            "unaccounted_keys": list(data.unaccounted),
        },
        "latency_ms": latency,
        "throughput": {
            "images": len(finished),
            "span_s": round(span, 2),
            "images_per_s": round(len(finished) / span, 3) if span > 0 else None,
            "source_mb_per_s": round(source_mb / span, 3) if span > 0 else None,
            "peak_5s_images_per_s": round(max(rolling), 2) if rolling else None,
        },
        "stages_ms": stages,
        "by_size": by_size,
        "errors": dict(errors),
        "resources": resources,
        "emulator": emulator,
        "acceptance": acceptance,
        "cost": cost,
    }


def _mp_key(label: str) -> float:
    try:
        return float(label.rstrip("MP"))
    except ValueError:
        return math.inf


def _loop(data: RunData) -> str:
    if data.options.rate is not None:
        return f"open loop, {data.options.rate:g} images/s"
    return f"closed loop, {data.options.concurrency} in flight"


def _resources(data: RunData) -> dict[str, Any]:
    series = data.timeseries
    mask = _busy_mask(series)
    depths = [s["depth"] for s in series if s.get("depth") is not None]
    everything = [True] * len(series)
    result: dict[str, Any] = {
        "cores": data.cores,
        "samples": len(series),
        "busy_samples": sum(mask),
        "queue_depth_peak": max(depths, default=None),
        "queue_depth_mean_busy": _mean_where(series, "depth", mask),
    }
    for name in (
        "workers_util",
        "emulator_util",
        "harness_util",
        "other_util",
        "machine_util",
        "busy_fraction",
    ):
        result[f"{name}_busy"] = _mean_where(series, name, mask)
        result[f"{name}_run"] = _mean_where(series, name, everything)
    # On a shared machine: the same, over the seconds when other processes stayed quiet.
    quiet = [
        keep and s.get("other_util") is not None and s["other_util"] < QUIET_OTHER
        for s, keep in zip(series, mask, strict=True)
    ]
    result["quiet_samples"] = sum(quiet)
    for name in ("workers_util", "emulator_util", "harness_util", "busy_fraction"):
        result[f"{name}_quiet"] = _mean_where(series, name, quiet)
    workers, emulator = result["workers_util_busy"], result["emulator_util_busy"]
    result["stack_util_busy"] = (
        round(workers + emulator, 4) if workers is not None and emulator is not None else None
    )
    cpu_total = max((s["worker_cpu_s"] for s in series if s.get("worker_cpu_s")), default=None)
    processed = sum(1 for item in data.items.values() if item.get("status") == "PROCESSED")
    result["worker_cpu_ms_per_image"] = (
        round(cpu_total * 1000 / processed, 1) if cpu_total and processed else None
    )
    hwm = list(data.hwm_mb.values())
    result["worker_peak_rss_mb"] = max(hwm, default=None)
    totals = [s["worker_rss_mb"] for s in series if s.get("worker_rss_mb") is not None]
    result["workers_total_rss_peak_mb"] = max(totals, default=None)
    return result


def _emulator(
    data: RunData, processed: Sequence[dict[str, Any]], resources: dict[str, Any]
) -> dict[str, Any]:
    """How much the emulator (moto, on the embedded stack) cost, and whether it was the limit."""
    probes = [s["probe_ms"] for s in data.timeseries if s.get("probe_ms") is not None]
    put = data.calls.get("put_ms", [])
    sizes = [r["source_bytes"] for r in processed]
    s3_ms = [r["timings_ms"].get("fetch", 0) + r["timings_ms"].get("store", 0) for r in processed]
    processing = _field(processed, "processing_ms")
    s3_share = sum(s3_ms) / sum(processing) if processing and sum(processing) > 0 else None
    result: dict[str, Any] = {
        "depth_probe_ms": distribution(probes),
        "put_object_ms": distribution(put),
        "send_batch_ms": distribution(data.calls.get("send_ms", [])),
        "table_poll_ms": distribution(data.calls.get("poll_ms", [])),
        "put_mb_per_s": round(sum(sizes) / 1e6 / (sum(put) / 1000), 1)
        if put and sum(put) > 0
        else None,
        "s3_share_of_processing": round(s3_share, 4) if s3_share is not None else None,
    }
    if not data.target.embedded:
        result["bottleneck"] = False
        result["verdict"] = "deployed stack: no emulator involved"
        return result
    cores = resources["cores"]
    workers = resources.get("workers_util_busy")
    emulator = resources.get("emulator_util_busy") or 0.0
    harness = resources.get("harness_util_busy") or 0.0
    other = resources.get("other_util_busy") or 0.0
    busy = resources.get("busy_fraction_busy")
    moto_cpu_s = _cpu_seconds(data.timeseries, "emulator_util", data.cores)
    done = sum(1 for item in data.items.values() if item.get("status") in ("PROCESSED", "FAILED"))
    result["moto_cpu_ms_per_image"] = round(moto_cpu_s * 1000 / done, 1) if done else None
    left = max(1e-9, 1.0 - emulator - harness - other)  # the CPU the workers could have had
    result["cpu_left_for_workers"] = round(left, 4)
    result["workers_share_of_cpu_left"] = round(workers / left, 4) if workers is not None else None
    reasons = []
    if workers is None:
        verdict, bottleneck = "no samples while the queue was non-empty", False
    elif workers >= CPU_TARGET:
        bottleneck = False
        verdict = (
            f"no: the workers kept {workers:.0%} of {cores} cores busy while the queue was "
            f"non-empty; moto used {emulator:.0%}, the harness {harness:.0%}"
        )
    else:
        share = workers / left
        per_image = result["moto_cpu_ms_per_image"]
        reasons.append(
            f"moto used {emulator:.0%} of the {cores} cores ({per_image} ms CPU per image), "
            f"the harness {harness:.0%} and other processes {other:.0%}, which leaves "
            f"{left:.0%} for the workers; they used {workers:.0%}, {share:.0%} of it"
        )
        if share < 0.9:
            reasons.append(
                f"the workers also idled ({1 - share:.0%} of what was left): inside the handler "
                f"{busy if busy is None else f'{busy:.0%}'} of the time, the rest in polling, "
                "deleting (moto's SQS) or waiting for the producer"
            )
        if s3_share is not None and s3_share > 0.2:
            reasons.append(f"moto's S3 calls took {s3_share:.0%} of per-image processing time")
        bottleneck = emulator > other and (emulator + harness) > 1 - CPU_TARGET
        prefix = "yes: " if bottleneck else "no (other load): " if other >= emulator else "no: "
        verdict = prefix + "; ".join(reasons)
    result.update(bottleneck=bottleneck, verdict=verdict, reasons=reasons)
    return result


def _cpu_seconds(series: Sequence[dict[str, Any]], name: str, cores: int) -> float:
    """Integrate a utilisation series (fraction of all cores) over its sample intervals."""
    total, previous = 0.0, 0.0
    for sample in series:
        total += (sample.get(name) or 0.0) * (sample["t"] - previous) * cores
        previous = sample["t"]
    return total


def _acceptance(latency: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    e2e = latency["e2e"]["p50"]
    engine = latency["engine"]["p50"]
    isolated = latency["isolated_engine"]["p50"]
    cpu = resources.get("workers_util_busy")
    return {
        "cpu_target": CPU_TARGET,
        "cpu_util": cpu,
        "cpu_ok": cpu is not None and cpu >= CPU_TARGET,
        "latency_target": LATENCY_TARGET,
        "e2e_p50_over_engine_p50": round(e2e / engine, 2) if e2e and engine else None,
        "e2e_p50_over_isolated_engine_p50": round(e2e / isolated, 2) if e2e and isolated else None,
        "latency_ok": bool(e2e and engine and e2e <= LATENCY_TARGET * engine),
    }


def _cost(
    processed: Sequence[dict[str, Any]],
    data: RunData,
    overrides: dict[str, Any],
    prices: Prices | None,
) -> dict[str, Any] | None:
    compute = _field(processed, "processing_ms")
    if not compute:
        return None
    from core.events import backfill_message

    sample_key = processed[0]["key"]
    message = backfill_message(data.target.raw_bucket, sample_key, 1, "0" * 32, datetime.now(UTC))
    inputs = CostInputs(
        compute_ms_per_image=statistics.fmean(compute),
        renditions_per_image=statistics.fmean(r.get("renditions", 0) for r in processed),
        item_bytes=statistics.fmean(r.get("item_bytes", 0) for r in processed),
        message_bytes=len(message) + 400,  # + the SQS envelope and attributes, roughly
        batch_size=float(overrides.get("batch_size") or data.target.batch_size),
        **{k: v for k, v in overrides.items() if k != "batch_size" and v is not None},
    )
    return estimate(inputs, prices).to_dict()


# ----------------------------------------------------------------------------- rendering


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def tables(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) for every section, shared by the Markdown and HTML."""
    run, acc, thr = summary["run"], summary["accounting"], summary["throughput"]
    res, emu, ok = summary["resources"], summary["emulator"], summary["acceptance"]
    sections: list[tuple[str, list[str], list[list[str]], list[str]]] = []
    run_rows = [
        ["target", str(run["target"])],
        ["mode / loop", f"{run['mode']} / {run['loop']}"],
        ["images", f"{run['measured']} measured + {run['warmup']} warm-up"],
        [
            "workers",
            (
                f"{run.get('workers', '-')} processes x {run.get('threads', '-')} thread(s) "
                f"on {run['cores']} cores, batch size {run.get('batch_size', '-')}"
            ),
        ],
        [
            "IAM and SigV4 enforced",
            {True: "yes", False: "no (measurement)"}.get(run.get("iam_enforced"), "-"),
        ],
        ["started", run["started"]],
        ["wall time", f"{run['wall_s']} s"],
        ["command", f"`{run.get('command', '-')}`"],
    ]
    sections.append(("Run", ["", ""], run_rows, []))
    verdict = "all accounted for" if acc["unaccounted"] == 0 else "**KEYS NOT ACCOUNTED FOR**"
    notes = (
        [f"Unaccounted keys: {', '.join(acc['unaccounted_keys'][:50])}"]
        if acc["unaccounted_keys"]
        else []
    )
    sections.append(
        (
            f"Accounting: {verdict}",
            ["sent", "processed", "failed", "DLQ", "unaccounted"],
            [[str(acc[k]) for k in ("sent", "processed", "failed", "dlq", "unaccounted")]],
            notes,
        )
    )
    names = dict(LATENCY_SERIES) | {"isolated_engine": "engine alone (calibration, idle stack)"}
    latency_rows = [
        [names[key]] + [_fmt(d[c]) for c in ("n", "p50", "p90", "p99", "max", "mean")]
        for key, d in summary["latency_ms"].items()
        if d["n"]
    ]
    sections.append(
        (
            "Latency (ms, processed images, nearest-rank percentiles)",
            ["latency (ms)", "n", "p50", "p90", "p99", "max", "mean"],
            latency_rows,
            [],
        )
    )
    size_rows = [
        [
            label,
            str(g["n"]),
            _fmt(g["source_mb_mean"], 2),
            _fmt(g["e2e_p50"]),
            _fmt(g["processing_p50"]),
            _fmt(g["engine_p50"]),
        ]
        for label, g in summary["by_size"].items()
    ]
    sections.append(
        (
            "By size class",
            ["size", "n", "source MB", "e2e p50 ms", "processing p50 ms", "engine p50 ms"],
            size_rows,
            [],
        )
    )
    sections.append(
        (
            "Throughput",
            ["images", "span s", "images/s", "source MB/s", "peak 5 s images/s"],
            [
                [
                    str(thr["images"]),
                    _fmt(thr["span_s"], 1),
                    _fmt(thr["images_per_s"], 2),
                    _fmt(thr["source_mb_per_s"], 2),
                    _fmt(thr["peak_5s_images_per_s"], 2),
                ]
            ],
            ["Span: the first measured image sent to the last one finished."],
        )
    )
    stages = summary["stages_ms"]
    total = sum(v for v in stages.values() if v) or 1.0
    stage_rows = [[name, _fmt(v, 1), _pct((v or 0) / total)] for name, v in stages.items()]
    sections.append(
        (
            "Stage breakdown (mean per processed image)",
            ["stage", "mean ms", "share"],
            stage_rows,
            [("'other': processing time outside the five stages (catalog read, bookkeeping).")],
        )
    )
    error_rows = [[k, str(v)] for k, v in sorted(summary["errors"].items())] or [["none", "0"]]
    sections.append(("Errors", ["status / reason", "count"], error_rows, []))
    resource_rows = [
        [
            "worker CPU while the queue was non-empty",
            _pct(res.get("workers_util_busy")),
            f"of {res['cores']} cores",
        ],
        ["worker CPU over the whole run", _pct(res.get("workers_util_run")), ""],
        [
            "worker CPU while non-empty, in seconds when other processes used < 5%",
            _pct(res.get("workers_util_quiet")),
            f"{res.get('quiet_samples', 0)} of {res.get('busy_samples', 0)} s",
        ],
        ["moto CPU in those quiet seconds", _pct(res.get("emulator_util_quiet")), ""],
        ["moto (emulator) CPU while non-empty", _pct(res.get("emulator_util_busy")), ""],
        [
            "workers + moto (the whole embedded stack) while non-empty",
            _pct(res.get("stack_util_busy")),
            "",
        ],
        ["harness CPU while non-empty", _pct(res.get("harness_util_busy")), ""],
        ["other processes on the machine", _pct(res.get("other_util_busy")), ""],
        ["workers inside the handler", _pct(res.get("busy_fraction_busy")), "of worker time"],
        [
            "worker CPU per processed image",
            _fmt(res.get("worker_cpu_ms_per_image"), 0, " ms"),
            "all worker CPU / images",
        ],
        ["peak RSS of one worker (VmHWM)", _fmt(res.get("worker_peak_rss_mb"), 0, " MB"), ""],
        ["peak RSS of all workers", _fmt(res.get("workers_total_rss_peak_mb"), 0, " MB"), ""],
        [
            "queue depth peak / mean while non-empty",
            (f"{_fmt(res.get('queue_depth_peak'))} / {_fmt(res.get('queue_depth_mean_busy'), 1)}"),
            "visible + in flight",
        ],
    ]
    if not summary["run"]["embedded"]:
        resource_rows = resource_rows[-1:]
    sections.append(
        (
            "Resources",
            ["figure", "value", ""],
            resource_rows,
            [
                (
                    "Utilisation = CPU seconds / (wall seconds x cores), from /proc every second; "
                    "workers include their children. 'Non-empty' = sampled intervals with a queue "
                    "depth above zero at both ends."
                )
            ],
        )
    )
    emu_rows = [
        ["queue depth probe (GetQueueAttributes)", _dist(emu["depth_probe_ms"])],
        ["PutObject from the harness", _dist(emu["put_object_ms"])],
        ["SendMessageBatch from the harness", _dist(emu["send_batch_ms"])],
        ["table poll (BatchGetItem)", _dist(emu["table_poll_ms"])],
        ["PutObject throughput", _fmt(emu["put_mb_per_s"], 1, " MB/s")],
        ["S3 fetch + store share of processing", _pct(emu["s3_share_of_processing"])],
        ["moto CPU per image", _fmt(emu.get("moto_cpu_ms_per_image"), 0, " ms")],
        [
            "CPU left for the workers (after moto, harness, others)",
            _pct(emu.get("cpu_left_for_workers")),
        ],
        ["share of it the workers used", _pct(emu.get("workers_share_of_cpu_left"))],
    ]
    sections.append(
        (
            "Emulator (moto)",
            ["call", "p50 / p99 / max ms"],
            emu_rows,
            [f"**Emulator bottleneck: {emu['verdict']}**"],
        )
    )
    targets = [
        [
            "worker CPU >= 85% of the cores while the queue is non-empty",
            _pct(ok["cpu_util"]),
            "met" if ok["cpu_ok"] else "NOT met",
        ],
        [
            "the same, in the seconds when other processes used < 5% of the CPU",
            _pct(res.get("workers_util_quiet")),
            f"{res.get('quiet_samples', 0)} s",
        ],
        [
            "workers + moto (the emulator shares the cores) while non-empty",
            _pct(res.get("stack_util_busy")),
            "for reference",
        ],
        [
            "e2e p50 <= 3x the engine's median per-image time (in-run engine timings)",
            f"{_fmt(ok['e2e_p50_over_engine_p50'], 2)}x",
            "met" if ok["latency_ok"] else "NOT met",
        ],
        [
            "e2e p50 / engine alone (calibration, idle machine)",
            f"{_fmt(ok['e2e_p50_over_isolated_engine_p50'], 2)}x",
            "for reference",
        ],
    ]
    if summary["run"]["embedded"]:
        sections.append(("Targets", ["target", "measured", ""], targets, []))
    cost = summary.get("cost")
    if cost:
        cost_rows = [
            [
                line["component"],
                f"{line['quantity_per_image']:.4g} {line['unit']}",
                f"${_price(line['unit_price'])}",
                f"${line['per_million']:,.2f}",
            ]
            for line in cost["lines"]
        ] + [["**total per million images**", "", "", f"**${cost['per_million']:,.2f}**"]]
        notes = ["Assumptions: " + "; ".join(cost["assumptions"]) + "."]
        notes.append(
            "Prices (override with --price NAME=USD): "
            + ", ".join(f"{k}={_price(v)}" for k, v in cost["prices"].items())
        )
        sections.append(
            (
                "Cost per million images",
                ["component", "per image", "unit price", "per million"],
                cost_rows,
                notes,
            )
        )
    return sections


def _price(value: float) -> str:
    """USD without exponents: 0.0000133334, 0.2, 5."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def _dist(d: dict[str, Any]) -> str:
    if not d.get("n"):
        return "-"
    return f"{_fmt(d['p50'], 1)} / {_fmt(d['p99'], 1)} / {_fmt(d['max'], 1)} (n={d['n']})"


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# imgpipe load test", ""]
    emu = summary["emulator"]
    lines.append(f"**Emulator bottleneck: {emu['verdict']}**")
    lines.append("")
    for title, header, rows, notes in tables(summary):
        lines += [f"## {title}", ""]
        if header != ["", ""]:
            lines.append("| " + " | ".join(header) + " |")
        else:
            lines.append("| | |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
        for note in notes:
            lines += [note, ""]
    return "\n".join(lines)


def _md_inline(text: str) -> str:
    """Escape, then render **bold** and `code` (all the Markdown the tables use)."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def html_report(summary: dict[str, Any], charts: dict[str, bytes]) -> str:
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        "<title>imgpipe load test</title>",
        (
            "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;"
            "padding:0 1rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1rem}"
            "td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}"
            "th{background:#f4f4f4}td:not(:first-child){font-variant-numeric:tabular-nums}"
            "img{max-width:100%;border:1px solid #eee;margin:.5rem 0}"
            ".bad{color:#b00020}.good{color:#1b5e20}code{font-size:12px}</style>"
        ),
        "<h1>imgpipe load test</h1>",
    ]
    emu = summary["emulator"]
    css = "bad" if emu.get("bottleneck") else "good"
    parts.append(f"<p class={css}><b>Emulator bottleneck: {html.escape(emu['verdict'])}</b></p>")
    titles = {
        "latency_cdf": "Latency CDF",
        "timeline": "Throughput, queue depth and CPU over time",
        "stages": "Stage breakdown",
        "errors": "Outcomes and errors",
    }
    for name, png in charts.items():
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{titles.get(name, name)}</h2>")
        parts.append(
            f'<img alt="{html.escape(titles.get(name, name))}" '
            f'src="data:image/png;base64,{encoded}">'
        )
    for title, header, rows, notes in tables(summary):
        parts.append(f"<h2>{_md_inline(title)}</h2><table>")
        if header != ["", ""]:
            parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{_md_inline(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
        parts += [f"<p>{_md_inline(note)}</p>" for note in notes]
    return "\n".join(parts) + "\n</html>\n"


# ----------------------------------------------------------------------------- charts


def render_charts(
    rows: Sequence[dict[str, Any]], summary: dict[str, Any], series: Sequence[dict[str, Any]]
) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    charts = {
        "latency_cdf": _latency_chart(plt, rows, summary),
        "timeline": _timeline_chart(plt, rows, series, summary),
        "stages": _stages_chart(plt, summary),
        "errors": _errors_chart(plt, summary),
    }
    return charts


def _png(plt: Any, figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _latency_chart(plt: Any, rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> bytes:
    figure, axis = plt.subplots(figsize=(10, 4.2))
    processed = [r for r in rows if not r["warmup"] and r.get("status") == "PROCESSED"]
    for key, label in LATENCY_SERIES:
        values = sorted(_field(processed, f"{key}_ms"))
        if not values:
            continue
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        axis.step([v / 1000 for v in values], fractions, where="post", label=label)
    e2e = summary["latency_ms"]["e2e"]
    for name, _ in PERCENTILES:
        if e2e.get(name) is not None:
            axis.axvline(e2e[name] / 1000, color="#555", linestyle=":", linewidth=0.8)
            axis.annotate(
                f"e2e {name} {e2e[name] / 1000:.2f} s",
                (e2e[name] / 1000, 1.0),
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
    return _png(plt, figure)


def _timeline_chart(
    plt: Any,
    rows: Sequence[dict[str, Any]],
    series: Sequence[dict[str, Any]],
    summary: dict[str, Any],
) -> bytes:
    embedded = summary["run"]["embedded"]
    count = 3 if embedded else 2
    figure, axes = plt.subplots(count, 1, figsize=(10, 2.6 * count), sharex=True)
    bins = throughput_series(rows)
    top = axes[0]
    if bins:
        times = [b["t"] for b in bins]
        top.bar(
            times,
            [b["images_per_s"] for b in bins],
            width=1.0,
            align="edge",
            color="#9ecae1",
            label="images/s (1 s bins)",
        )
        rolling = [
            statistics.fmean(b["images_per_s"] for b in bins[max(0, i - 4) : i + 1])
            for i in range(len(bins))
        ]
        top.plot([t + 0.5 for t in times], rolling, color="#08519c", label="images/s (5 s mean)")
        top.step(
            [*times, times[-1] + 1],
            [bins[0]["sent_per_s"], *[b["sent_per_s"] for b in bins]],
            where="pre",
            color="#333",
            linestyle="--",
            linewidth=0.9,
            label="sent/s (offered load)",
        )
        mb = top.twinx()
        mb_rolling = [
            statistics.fmean(b["mb_per_s"] for b in bins[max(0, i - 4) : i + 1])
            for i in range(len(bins))
        ]
        mb.plot(
            [t + 0.5 for t in times],
            mb_rolling,
            color="#e6550d",
            linewidth=1,
            label="source MB/s (5 s mean)",
        )
        mb.set_ylabel("source MB/s", color="#e6550d")
        mb.set_ylim(bottom=0)
        mb.grid(False)
        handles = top.get_legend_handles_labels()
        extra = mb.get_legend_handles_labels()
        top.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=7)
    top.set_ylabel("images/s")
    top.set_title("Throughput (completions by finished_at)")
    depth_axis = axes[1]
    times = [s["t"] for s in series]
    depth_axis.plot(
        times,
        [s.get("depth") or 0 for s in series],
        color="#756bb1",
        label="queue depth (visible + in flight)",
    )
    depth_axis.plot(
        times,
        [s.get("in_flight") or 0 for s in series],
        color="#bcbddc",
        linestyle="--",
        label="harness: sent, not yet accounted",
    )
    depth_axis.set_ylabel("messages")
    depth_axis.set_ylim(bottom=0)
    depth_axis.legend(loc="upper left", fontsize=7)
    depth_axis.set_title("Queue depth")
    if embedded:
        cpu = axes[2]
        cores = summary["resources"]["cores"]
        layers = [
            ("workers", [100 * (s.get("workers_util") or 0) for s in series], "#31a354"),
            ("moto", [100 * (s.get("emulator_util") or 0) for s in series], "#de2d26"),
            ("harness", [100 * (s.get("harness_util") or 0) for s in series], "#fd8d3c"),
            ("other processes", [100 * (s.get("other_util") or 0) for s in series], "#bdbdbd"),
        ]
        # step "pre": a sample covers the interval that ends at its time, the first from 0
        cpu.stackplot(
            [0.0, *times],
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
    axes[-1].set_xlabel("seconds since the start of the run")
    return _png(plt, figure)


def _stages_chart(plt: Any, summary: dict[str, Any]) -> bytes:
    groups = {"all": summary["stages_ms"]} | {
        label: g["stages_ms"] for label, g in summary["by_size"].items()
    }
    figure, axis = plt.subplots(figsize=(10, 1.2 + 0.6 * len(groups)))
    labels = list(groups)
    left = [0.0] * len(labels)
    for stage, colour in STAGE_COLOURS.items():
        widths = [(groups[g].get(stage) or 0.0) / 1000 for g in labels]
        axis.barh(labels, widths, left=left, color=colour, label=stage)
        for index, width in enumerate(widths):
            if width > 0.04 * max(1e-9, max(sum_ for sum_ in [_sum(groups[g]) for g in labels])):
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
    return _png(plt, figure)


def _sum(stages: dict[str, Any]) -> float:
    return sum((v or 0.0) / 1000 for v in stages.values())


def _errors_chart(plt: Any, summary: dict[str, Any]) -> bytes:
    acc = summary["accounting"]
    outcomes = {"PROCESSED": acc["processed"]}
    for name, count in sorted(summary["errors"].items()):
        outcomes[name] = count
    figure, axis = plt.subplots(figsize=(10, 1.0 + 0.4 * len(outcomes)))
    colours = ["#31a354" if k == "PROCESSED" else "#de2d26" for k in outcomes]
    bars = axis.barh(list(outcomes), list(outcomes.values()), color=colours)
    axis.bar_label(bars, padding=3, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("images")
    failures = sum(v for k, v in outcomes.items() if k != "PROCESSED")
    axis.set_title("Outcomes: " + ("no errors" if not failures else f"{failures} not processed"))
    axis.set_xlim(0, max(outcomes.values() or [1]) * 1.12 + 1)
    return _png(plt, figure)


# ----------------------------------------------------------------------------- writing


def write_reports(
    data: RunData,
    out: Path,
    cost_inputs: dict[str, Any] | None = None,
    prices: Prices | None = None,
    pool: Sequence[Any] = (),
) -> dict[str, Any]:
    """Write results.json, summary.md, report.html and charts/*.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = image_samples(data)
    summary = summarise(data, rows, cost_inputs, prices)
    charts = render_charts(rows, summary, data.timeseries)
    chart_dir = out / "charts"
    chart_dir.mkdir(exist_ok=True)
    for name, png in charts.items():
        (chart_dir / f"{name}.png").write_bytes(png)
    results = {
        "version": 1,
        "summary": summary,
        "images": rows,
        "timeseries": data.timeseries,
        "throughput_series": throughput_series(rows),
        "calls": data.calls,
        "options": asdict(data.options),
        "target": asdict(data.target),
        "pool": [
            {
                "path": str(s.path),
                "size_class": s.size_class,
                "format": s.fmt,
                "width": s.width,
                "height": s.height,
                "bytes": s.nbytes,
                "engine_ms": s.engine_ms,
            }
            for s in pool
        ],
        "engine_stages": list(ENGINE_STAGES),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str), "utf-8")
    (out / "summary.md").write_text(markdown(summary), "utf-8")
    (out / "report.html").write_text(html_report(summary, charts), "utf-8")
    return summary
