"""The load-test summary, typed: built once by ``loadtest.analysis``, read by attribute by the
reports and the command line, and written to results.json by ``to_dict()``.

Mappings remain where the keys are data: stage names, size classes and error reasons.
"""

from dataclasses import asdict, dataclass, replace
from typing import Any

from loadtest.cost import CostEstimate
from loadtest.stats import Distribution


@dataclass(frozen=True)
class RunInfo:
    target: str
    embedded: bool
    region: str
    mode: str
    loop: str
    started: str  # ISO-8601 UTC, to the second
    wall_s: float
    warmup: int
    measured: int
    cores: int
    # How the target was set up (see ``loadtest.run.StackInfo``); None when not recorded.
    command: str | None = None
    concurrency: int | None = None
    rate: float | None = None
    workers: int | str | None = None
    threads: int | str | None = None
    iam_enforced: bool | None = None
    batch_size: int | None = None
    batch_window_s: float | None = None


@dataclass(frozen=True)
class Accounting:
    sent: int
    processed: int
    failed: int
    dlq: int
    unaccounted: int
    unaccounted_keys: list[str]


LATENCY_LABELS = {
    "e2e": "end-to-end (sent -> finished_at)",
    "queue_wait": "queue wait (eventTime -> started_at)",
    "processing": "processing (started_at -> finished_at)",
    "engine": "engine (decode + render + encode)",
    "isolated_engine": "engine alone (calibration, idle stack)",
}
IN_RUN_SERIES = ("e2e", "queue_wait", "processing", "engine")  # measured in the run


@dataclass(frozen=True)
class Latency:
    """Distributions in ms over the processed, measured images."""

    e2e: Distribution  # sent -> finished_at
    queue_wait: Distribution  # eventTime -> started_at
    processing: Distribution  # started_at -> finished_at
    engine: Distribution  # decode + render + encode, in the run
    isolated_engine: Distribution  # the engine alone (calibration, idle machine)

    def by_name(self) -> dict[str, Distribution]:
        return {name: getattr(self, name) for name in LATENCY_LABELS}


@dataclass(frozen=True)
class Throughput:
    images: int
    span_s: float  # the first measured image sent to the last one finished
    images_per_s: float | None
    source_mb_per_s: float | None
    peak_5s_images_per_s: float | None


@dataclass(frozen=True)
class SizeGroup:
    n: int
    source_mb_mean: float
    e2e_p50: float | None
    processing_p50: float | None
    engine_p50: float | None
    stages_ms: dict[str, float | None]


@dataclass(frozen=True)
class Resources:
    """Utilisations are fractions of all cores: ``_busy`` while the queue was non-empty,
    ``_run`` over the whole run, ``_quiet`` in busy seconds when other processes were quiet."""

    cores: int
    samples: int
    busy_samples: int
    queue_depth_peak: int | None
    queue_depth_mean_busy: float | None
    workers_util_busy: float | None
    workers_util_run: float | None
    emulator_util_busy: float | None
    emulator_util_run: float | None
    harness_util_busy: float | None
    harness_util_run: float | None
    other_util_busy: float | None
    other_util_run: float | None
    machine_util_busy: float | None
    machine_util_run: float | None
    busy_fraction_busy: float | None
    busy_fraction_run: float | None
    quiet_samples: int
    workers_util_quiet: float | None
    emulator_util_quiet: float | None
    harness_util_quiet: float | None
    busy_fraction_quiet: float | None
    stack_util_busy: float | None  # workers + moto
    worker_cpu_ms_per_image: float | None
    worker_peak_rss_mb: float | None  # the largest VmHWM of one worker
    workers_total_rss_peak_mb: float | None


@dataclass(frozen=True)
class Emulator:
    """What moto cost on the embedded stack, and whether it was the limit."""

    depth_probe_ms: Distribution
    put_object_ms: Distribution
    send_batch_ms: Distribution
    table_poll_ms: Distribution
    put_mb_per_s: float | None
    s3_share_of_processing: float | None
    # The embedded stack only (None on a deployed one):
    moto_cpu_ms_per_image: float | None
    cpu_left_for_workers: float | None
    workers_share_of_cpu_left: float | None
    bottleneck: bool
    verdict: str
    reasons: list[str]


@dataclass(frozen=True)
class Acceptance:
    cpu_target: float
    cpu_util: float | None
    cpu_ok: bool
    latency_target: float
    e2e_p50_over_engine_p50: float | None
    e2e_p50_over_isolated_engine_p50: float | None
    latency_ok: bool


@dataclass(frozen=True)
class Summary:
    run: RunInfo
    accounting: Accounting
    latency_ms: Latency
    throughput: Throughput
    stages_ms: dict[str, float | None]  # "queue wait", the pipeline's stages, "other"
    by_size: dict[str, SizeGroup]
    errors: dict[str, int]  # "FAILED:<reason>", "DLQ" or "UNACCOUNTED" -> images
    resources: Resources
    emulator: Emulator
    acceptance: Acceptance
    cost: CostEstimate | None

    def to_dict(self) -> dict[str, Any]:
        """The summary as results.json holds it (and ``loadtest.compare`` reads it)."""
        result = asdict(replace(self, cost=None))
        result["cost"] = self.cost.to_dict() if self.cost is not None else None
        return result
