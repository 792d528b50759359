"""Build the load-test summary from a run's measurements, once: accounting, latency,
throughput, stage costs, CPU and memory, the emulator's share, the targets and the cost."""

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from core.catalog import Stage, Status
from core.events import backfill_message
from loadtest.cost import CostEstimate, CostInputs, FunctionConfig, Prices, estimate
from loadtest.image_rows import ImageRow
from loadtest.run import RunData
from loadtest.sampling import Sample
from loadtest.stats import busy_mask, distribution, mean, mean_where, throughput_series
from loadtest.summary import (
    Acceptance,
    Accounting,
    Emulator,
    Latency,
    Resources,
    RunInfo,
    SizeGroup,
    Summary,
    Throughput,
)

STAGES = tuple(stage.value for stage in Stage)
CPU_TARGET = 0.85
QUIET_OTHER = 0.05  # other processes below this share of the CPU: a 'quiet' second
LATENCY_TARGET = 3.0  # e2e p50 at most 3x the engine's median per-image time


def summarise(
    data: RunData,
    rows: Sequence[ImageRow],
    config: FunctionConfig,
    prices: Prices | None = None,
) -> Summary:
    measured = [r for r in rows if not r.warmup]
    processed = [r for r in measured if r.status == Status.PROCESSED]
    latency = Latency(
        e2e=distribution(r.e2e_ms for r in processed),
        queue_wait=distribution(r.queue_wait_ms for r in processed),
        processing=distribution(r.processing_ms for r in processed),
        engine=distribution(r.engine_ms for r in processed),
        isolated_engine=distribution(
            r.isolated_engine_ms for r in processed if r.isolated_engine_ms
        ),
    )
    resources = _resources(data)
    return Summary(
        run=_run_info(data, rows),
        accounting=_accounting(data, rows),
        latency_ms=latency,
        throughput=_throughput(rows),
        stages_ms=stage_means(processed),
        by_size=_by_size(processed),
        errors=dict(
            Counter(
                f"FAILED:{r.reason}" if r.status == Status.FAILED else r.status
                for r in rows
                if r.status != Status.PROCESSED
            )
        ),
        resources=resources,
        emulator=_emulator(data, processed, resources),
        acceptance=_acceptance(latency, resources),
        cost=_cost(processed, data, config, prices),
    )


def _run_info(data: RunData, rows: Sequence[ImageRow]) -> RunInfo:
    options = data.options
    if options.rate is not None:
        loop = f"open loop, {options.rate:g} images/s"
    else:
        loop = f"closed loop, {options.concurrency} in flight"
    stack = data.stack
    return RunInfo(
        target=data.target.name,
        embedded=data.target.embedded,
        region=data.target.region,
        mode=options.mode,
        loop=loop,
        started=datetime.fromtimestamp(data.started_at, UTC).isoformat(timespec="seconds"),
        wall_s=round(data.ended_at - data.started_at, 2),
        warmup=sum(r.warmup for r in rows),
        measured=sum(not r.warmup for r in rows),
        cores=data.cores,
        command=stack.command if stack else None,
        concurrency=stack.concurrency if stack else None,
        rate=stack.rate if stack else None,
        workers=stack.workers if stack else None,
        threads=stack.threads if stack else None,
        iam_enforced=stack.iam_enforced if stack else None,
        batch_size=stack.batch_size if stack else None,
        batch_window_s=stack.batch_window_s if stack else None,
    )


def _accounting(data: RunData, rows: Sequence[ImageRow]) -> Accounting:
    statuses = Counter(r.status for r in rows)
    return Accounting(
        sent=len(rows),
        processed=statuses.get(Status.PROCESSED, 0),
        failed=statuses.get(Status.FAILED, 0),
        dlq=statuses.get("DLQ", 0),
        unaccounted=statuses.get("UNACCOUNTED", 0),
        unaccounted_keys=list(data.unaccounted),
    )


def _throughput(rows: Sequence[ImageRow]) -> Throughput:
    measured = [r for r in rows if not r.warmup]
    finished = [r.finished_at for r in measured if r.finished_at is not None]
    first_sent = min((r.sent_at for r in measured), default=0.0)
    span = max(finished, default=first_sent) - first_sent
    source_mb = sum(r.source_bytes for r in measured if r.status == Status.PROCESSED) / 1e6
    bins = throughput_series(rows)
    rolling = [
        statistics.fmean(b.images_per_s for b in bins[i : i + 5])
        for i in range(max(0, len(bins) - 4))
    ]
    return Throughput(
        images=len(finished),
        span_s=round(span, 2),
        images_per_s=round(len(finished) / span, 3) if span > 0 else None,
        source_mb_per_s=round(source_mb / span, 3) if span > 0 else None,
        peak_5s_images_per_s=round(max(rolling), 2) if rolling else None,
    )


def stage_means(processed: Sequence[ImageRow]) -> dict[str, float | None]:
    """Mean ms per image: queue wait, each pipeline stage, and the rest of processing."""
    stages = {
        "queue wait": mean([r.queue_wait_ms for r in processed if r.queue_wait_ms is not None])
    }
    for stage in STAGES:
        stages[stage] = mean([r.timings_ms.get(stage, 0.0) for r in processed])
    stages["other"] = mean(
        [
            max(0.0, r.processing_ms - sum(r.timings_ms.get(s, 0.0) for s in STAGES))
            for r in processed
            if r.processing_ms is not None
        ]
    )
    return stages


def _by_size(processed: Sequence[ImageRow]) -> dict[str, SizeGroup]:
    groups = {}
    for label in sorted({r.size_class for r in processed}, key=_megapixels):
        group = [r for r in processed if r.size_class == label]
        groups[label] = SizeGroup(
            n=len(group),
            source_mb_mean=round(statistics.fmean(r.source_bytes for r in group) / 1e6, 3),
            e2e_p50=distribution(r.e2e_ms for r in group).p50,
            processing_p50=distribution(r.processing_ms for r in group).p50,
            engine_p50=distribution(r.engine_ms for r in group).p50,
            stages_ms=stage_means(group),
        )
    return groups


def _megapixels(label: str) -> float:
    try:
        return float(label.rstrip("MP"))
    except ValueError:
        return math.inf


def _resources(data: RunData) -> Resources:
    series = data.timeseries
    busy = busy_mask(series)
    run = [True] * len(series)
    # On a shared machine: the busy seconds when other processes stayed quiet.
    quiet = [
        keep and s.other_util is not None and s.other_util < QUIET_OTHER
        for s, keep in zip(series, busy, strict=True)
    ]
    workers, emulator = (mean_where(series, n, busy) for n in ("workers_util", "emulator_util"))
    cpu_total = max((s.worker_cpu_s for s in series if s.worker_cpu_s), default=None)
    processed = sum(1 for item in data.items.values() if item.get("status") == Status.PROCESSED)
    return Resources(
        cores=data.cores,
        samples=len(series),
        busy_samples=sum(busy),
        queue_depth_peak=max((s.depth for s in series if s.depth is not None), default=None),
        queue_depth_mean_busy=mean_where(series, "depth", busy),
        workers_util_busy=workers,
        workers_util_run=mean_where(series, "workers_util", run),
        emulator_util_busy=emulator,
        emulator_util_run=mean_where(series, "emulator_util", run),
        harness_util_busy=mean_where(series, "harness_util", busy),
        harness_util_run=mean_where(series, "harness_util", run),
        other_util_busy=mean_where(series, "other_util", busy),
        other_util_run=mean_where(series, "other_util", run),
        machine_util_busy=mean_where(series, "machine_util", busy),
        machine_util_run=mean_where(series, "machine_util", run),
        busy_fraction_busy=mean_where(series, "busy_fraction", busy),
        busy_fraction_run=mean_where(series, "busy_fraction", run),
        quiet_samples=sum(quiet),
        workers_util_quiet=mean_where(series, "workers_util", quiet),
        emulator_util_quiet=mean_where(series, "emulator_util", quiet),
        harness_util_quiet=mean_where(series, "harness_util", quiet),
        busy_fraction_quiet=mean_where(series, "busy_fraction", quiet),
        stack_util_busy=(
            round(workers + emulator, 4) if workers is not None and emulator is not None else None
        ),
        worker_cpu_ms_per_image=(
            round(cpu_total * 1000 / processed, 1) if cpu_total and processed else None
        ),
        worker_peak_rss_mb=max(data.hwm_mb.values(), default=None),
        workers_total_rss_peak_mb=max(
            (s.worker_rss_mb for s in series if s.worker_rss_mb is not None), default=None
        ),
    )


def _emulator(data: RunData, processed: Sequence[ImageRow], resources: Resources) -> Emulator:
    put = data.calls.put_ms
    s3_ms = sum(r.timings_ms.get("fetch", 0) + r.timings_ms.get("store", 0) for r in processed)
    processing = sum(r.processing_ms for r in processed if r.processing_ms is not None)
    s3_share = s3_ms / processing if processing > 0 else None
    sizes = sum(r.source_bytes for r in processed)
    moto_cpu_ms = left = share = None
    if data.target.embedded:
        moto_cpu_s = _cpu_seconds(data.timeseries, "emulator_util", data.cores)
        done = sum(1 for i in data.items.values() if i.get("status") in tuple(Status))
        moto_cpu_ms = round(moto_cpu_s * 1000 / done, 1) if done else None
        left = _cpu_left(resources)
        workers = resources.workers_util_busy
        share = round(workers / left, 4) if workers is not None else None
        left = round(left, 4)
    bottleneck, verdict, reasons = _verdict(data, resources, s3_share, moto_cpu_ms)
    return Emulator(
        depth_probe_ms=distribution(s.probe_ms for s in data.timeseries),
        put_object_ms=distribution(put),
        send_batch_ms=distribution(data.calls.send_ms),
        table_poll_ms=distribution(data.calls.poll_ms),
        put_mb_per_s=round(sizes / 1e6 / (sum(put) / 1000), 1) if put and sum(put) > 0 else None,
        s3_share_of_processing=round(s3_share, 4) if s3_share is not None else None,
        moto_cpu_ms_per_image=moto_cpu_ms,
        cpu_left_for_workers=left,
        workers_share_of_cpu_left=share,
        bottleneck=bottleneck,
        verdict=verdict,
        reasons=reasons,
    )


def _cpu_left(resources: Resources) -> float:
    """The CPU the workers could have had: what moto, the harness and others left."""
    emulator = resources.emulator_util_busy or 0.0
    harness = resources.harness_util_busy or 0.0
    return max(1e-9, 1.0 - emulator - harness - (resources.other_util_busy or 0.0))


def _verdict(
    data: RunData, resources: Resources, s3_share: float | None, moto_cpu_ms: float | None
) -> tuple[bool, str, list[str]]:
    """Whether the emulator was the bottleneck, in a sentence, with the reasons."""
    if not data.target.embedded:
        return False, "deployed stack: no emulator involved", []
    cores, workers = resources.cores, resources.workers_util_busy
    emulator = resources.emulator_util_busy or 0.0
    harness = resources.harness_util_busy or 0.0
    other = resources.other_util_busy or 0.0
    busy = resources.busy_fraction_busy
    if workers is None:
        return False, "no samples while the queue was non-empty", []
    if workers >= CPU_TARGET:
        verdict = (
            f"no: the workers kept {workers:.0%} of {cores} cores busy while the queue was "
            f"non-empty; moto used {emulator:.0%}, the harness {harness:.0%}"
        )
        return False, verdict, []
    left = _cpu_left(resources)
    share = workers / left
    reasons = [
        (
            f"moto used {emulator:.0%} of the {cores} cores ({moto_cpu_ms} ms CPU per image), "
            f"the harness {harness:.0%} and other processes {other:.0%}, which leaves "
            f"{left:.0%} for the workers; they used {workers:.0%}, {share:.0%} of it"
        )
    ]
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
    return bottleneck, prefix + "; ".join(reasons), reasons


def _cpu_seconds(series: Sequence[Sample], name: str, cores: int) -> float:
    """Integrate a utilisation series (fraction of all cores) over its sample intervals."""
    total, previous = 0.0, 0.0
    for sample in series:
        total += (getattr(sample, name) or 0.0) * (sample.t - previous) * cores
        previous = sample.t
    return total


def _acceptance(latency: Latency, resources: Resources) -> Acceptance:
    e2e, engine = latency.e2e.p50, latency.engine.p50
    isolated = latency.isolated_engine.p50
    cpu = resources.workers_util_busy
    return Acceptance(
        cpu_target=CPU_TARGET,
        cpu_util=cpu,
        cpu_ok=cpu is not None and cpu >= CPU_TARGET,
        latency_target=LATENCY_TARGET,
        e2e_p50_over_engine_p50=round(e2e / engine, 2) if e2e and engine else None,
        e2e_p50_over_isolated_engine_p50=round(e2e / isolated, 2) if e2e and isolated else None,
        latency_ok=bool(e2e and engine and e2e <= LATENCY_TARGET * engine),
    )


def _cost(
    processed: Sequence[ImageRow], data: RunData, config: FunctionConfig, prices: Prices | None
) -> CostEstimate | None:
    compute = [r.processing_ms for r in processed if r.processing_ms is not None]
    if not compute:
        return None
    key = processed[0].key
    message = backfill_message(data.target.raw_bucket, key, 1, "0" * 32, datetime.now(UTC))
    inputs = CostInputs(
        compute_ms_per_image=statistics.fmean(compute),
        puts_per_image=statistics.fmean(r.puts for r in processed),
        item_bytes=statistics.fmean(r.item_bytes for r in processed),
        message_bytes=len(message) + 400,  # + the SQS envelope and attributes, roughly
        batch_size=float(config.batch_size or data.target.batch_size),
        memory_mb=config.memory_mb,
        architecture=config.architecture,
        compute_scale=config.compute_scale,
    )
    return estimate(inputs, prices)
