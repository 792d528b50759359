"""The load-test harness: drive a workload into a stack, sample it, account for every key.

The workload is a pool of source images (photo-like synthetic ones generated once and cached,
or a corpus folder) sent under unique keys, either with PutObject into the raw bucket (the S3
notification path) or by enqueueing backfill-shaped messages for objects put into a source
bucket without notifications (the backfill path). The pace is an open loop (``rate`` images/s,
whatever the pipeline does) or a closed loop (``concurrency`` images kept in flight).

While it runs, a sampler thread records every second: the queue depth (timed, so the
emulator's latency is visible), the CPU used by the worker processes and their children, by
this process (the harness and, on the embedded stack, moto) and by the rest of the machine,
the workers' resident memory, and how often the workers were inside the handler.
"""

import logging
import math
import os
import random
import re
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.aws import s3_client
from core.events import backfill_message, parse_body
from infra.local.accounting import Tracker
from infra.local.poller import ACKED
from infra.local.provision import create_bucket

log = logging.getLogger("imgpipe.loadtest")

FORMATS: dict[str, tuple[str, str]] = {  # name -> (Pillow format, extension)
    "jpeg": ("JPEG", "jpg"),
    "png": ("PNG", "png"),
    "heic": ("HEIF", "heic"),
    "webp": ("WEBP", "webp"),
}
ALIASES = {"jpg": "jpeg", "heif": "heic"}
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".heic",
    ".heif",
    ".webp",
    ".gif",
    ".tif",
    ".tiff",
    ".avif",
    ".bmp",
}
STACK_OUTPUTS = {
    "raw_bucket": "RawBucketName",
    "output_bucket": "ProcessedBucketName",
    "queue_url": "QueueUrl",
    "dlq_url": "DeadLetterQueueUrl",
    "table": "TableName",
}
STAGES = ("fetch", "decode", "render", "encode", "store")
ENGINE_STAGES = ("decode", "render", "encode")


# ----------------------------------------------------------------------------- the workload


@dataclass(frozen=True)
class SizeClass:
    label: str
    megapixels: float
    weight: float

    @property
    def dimensions(self) -> tuple[int, int]:
        """4:3 landscape with about ``megapixels`` million pixels."""
        width = max(8, round(math.sqrt(self.megapixels * 1e6 * 4 / 3)))
        return width, max(6, round(width * 3 / 4))


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """``"a:40,b:60"`` -> [("a", 40.0), ("b", 60.0)]; a missing weight is 1."""
    pairs: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        value = float(weight) if weight else 1.0
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"bad weight in {part!r}")
        pairs.append((name.strip(), value))
    if not pairs or sum(w for _, w in pairs) <= 0:
        raise ValueError(f"no positive weights in {text!r}")
    return pairs


def parse_sizes(text: str) -> list[SizeClass]:
    """``"2MP:40,12MP:50,0.3MP:10"`` (fractional megapixels are fine)."""
    classes = []
    for name, weight in parse_weighted(text):
        match = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)\s*(?:MP)?", name, re.IGNORECASE)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"bad size {name!r}: expected megapixels such as 12MP or 0.3MP")
        classes.append(SizeClass(f"{float(match.group(1)):g}MP", float(match.group(1)), weight))
    return classes


def parse_formats(text: str) -> list[tuple[str, float]]:
    formats = []
    for name, weight in parse_weighted(text):
        key = ALIASES.get(name.lower(), name.lower())
        if key not in FORMATS:
            raise ValueError(f"unknown format {name!r}: choose from {', '.join(FORMATS)}")
        formats.append((key, weight))
    return formats


@dataclass
class Source:
    """One distinct source image of the pool (sent many times under different keys)."""

    path: Path
    size_class: str
    fmt: str
    width: int
    height: int
    nbytes: int
    engine_ms: float | None = None  # isolated (single image, idle stack) engine time

    def read(self) -> bytes:
        return self.path.read_bytes()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgpipe" / "loadtest"


def _generate(path: Path, width: int, height: int, seed: int, fmt: str) -> None:
    from loadtest.synthetic import photo_like_bytes

    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = photo_like_bytes(width, height, seed, fmt)
    partial = path.with_suffix(path.suffix + f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)


def synthetic_pool(
    sizes: Sequence[SizeClass],
    formats: Sequence[tuple[str, float]],
    per_class: int,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> list[Source]:
    """``per_class`` distinct photo-like images per (size, format), generated in parallel once
    and cached under ``cache_dir`` (12 MP takes a second or two each)."""
    from concurrent.futures import ProcessPoolExecutor

    cache_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for size in sizes:
        width, height = size.dimensions
        for fmt, _ in formats:
            pil_format, ext = FORMATS[fmt]
            for index in range(per_class):
                seed = 1000 + index
                path = cache_dir / f"{size.label}-{width}x{height}-{seed}.{ext}"
                plan.append((path, size.label, fmt, width, height, seed, pil_format))
    missing = [p for p in plan if not p[0].exists()]
    done = len(plan) - len(missing)
    if progress:
        progress(done, len(plan))
    if missing:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            futures = [pool.submit(_generate, p[0], p[3], p[4], p[5], p[6]) for p in missing]
            for future in futures:
                future.result()
                done += 1
                if progress:
                    progress(done, len(plan))
    return [
        Source(path, label, fmt, width, height, path.stat().st_size)
        for path, label, fmt, width, height, _, _ in plan
    ]


def corpus_pool(directory: Path) -> list[Source]:
    """Every image file under ``directory`` (the size class is the megapixel count, rounded)."""
    from PIL import Image, UnidentifiedImageError

    sources = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            with Image.open(path) as image:
                width, height = image.size
                fmt = (image.format or path.suffix[1:]).lower()
        except (UnidentifiedImageError, OSError):
            width = height = 0  # still sent: the pipeline must reject it cleanly
            fmt = path.suffix[1:].lower()
        megapixels = width * height / 1e6
        label = f"{megapixels:.0f}MP" if megapixels >= 1 else f"{megapixels:.1f}MP"
        sources.append(
            Source(path, label, ALIASES.get(fmt, fmt), width, height, path.stat().st_size)
        )
    return sources


def calibrate(sources: Sequence[Source], limit: int = 24) -> None:
    """Time the engine alone (this process, nothing else running) on up to ``limit`` sources,
    taken in turn from every (size, format) class: the reference for 'how much do queueing and
    polling add'. Sources left out get their class's median."""
    from core.imaging import Limits, parse_renditions, render
    from core.imaging.errors import ImageRejected

    specs = parse_renditions(os.environ.get("IMGPIPE_RENDITIONS"))
    limits = Limits(max_bytes=1 << 31)
    groups: dict[tuple[str, str], list[Source]] = {}
    for source in sources:
        groups.setdefault((source.size_class, source.fmt), []).append(source)
    rounds = max((len(g) for g in groups.values()), default=0)
    chosen = [g[i] for i in range(rounds) for g in groups.values() if i < len(g)][:limit]
    if chosen:  # warm up codecs and caches once
        try:
            render(chosen[0].read(), specs, limits)
        except ImageRejected:
            pass
    for source in chosen:
        try:
            result = render(source.read(), specs, limits)
        except ImageRejected:
            continue
        source.engine_ms = sum(float(result.timings_ms.get(s, 0.0)) for s in ENGINE_STAGES)
    for group in groups.values():
        known = [s.engine_ms for s in group if s.engine_ms is not None]
        for source in group:
            if source.engine_ms is None and known:
                source.engine_ms = statistics.median(known)


@dataclass(frozen=True)
class WorkItem:
    seq: int
    key: str
    source: Source
    warmup: bool


class Workload:
    """A deterministic stream of work items: size class and format drawn by weight (synthetic),
    or the corpus files in turn."""

    def __init__(
        self,
        pool: Sequence[Source],
        run_id: str,
        sizes: Sequence[SizeClass] | None = None,
        formats: Sequence[tuple[str, float]] | None = None,
        warmup: int = 0,
        seed: int = 0,
    ) -> None:
        if not pool:
            raise ValueError("the workload has no source images")
        self.pool = list(pool)
        self.run_id = run_id
        self.sizes = list(sizes or [])
        self.formats = list(formats or [])
        self.warmup = warmup
        self.rng = random.Random(seed)
        self.seq = 0

    def _choose(self) -> Source:
        if not self.sizes:
            return self.pool[self.seq % len(self.pool)]
        size = self.rng.choices(self.sizes, weights=[s.weight for s in self.sizes])[0]
        fmt = self.rng.choices([f for f, _ in self.formats], [w for _, w in self.formats])[0]
        matching = [s for s in self.pool if s.size_class == size.label and s.fmt == fmt]
        return self.rng.choice(matching)

    def next(self) -> WorkItem:
        source = self._choose()
        seq = self.seq
        self.seq += 1
        name = f"{seq:06d}-{source.path.name}"
        return WorkItem(seq, f"loadtest/{self.run_id}/{name}", source, seq < self.warmup)


# ----------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Target:
    name: str
    region: str
    raw_bucket: str
    output_bucket: str
    table: str
    queue_url: str
    dlq_url: str
    batch_size: int = 10
    embedded: bool = False


def target_from_stack(name: str, region: str | None = None) -> Target:
    """Read a deployed stack's CloudFormation outputs (see ``infra/template.yaml``)."""
    client: Any = boto3.client("cloudformation", region_name=region)
    stacks = client.describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in STACK_OUTPUTS.values() if key not in outputs]
    if missing:
        raise LookupError(f"stack {name} has no output(s) {', '.join(missing)}")
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stacks[0].get("Parameters", [])}
    batch = int(params.get("BatchSize") or 10)
    where = region or client.meta.region_name
    values = {field_: outputs[key] for field_, key in STACK_OUTPUTS.items()}
    return Target(name=name, region=where, batch_size=batch, **values)


def target_from_local(local: Any) -> Target:
    stack = local.resources
    return Target(
        name="embedded (moto on loopback)",
        region=stack.region,
        raw_bucket=stack.raw_bucket,
        output_bucket=stack.output_bucket,
        table=stack.table,
        queue_url=stack.queue_url,
        dlq_url=stack.dlq_url,
        batch_size=stack.settings.batch_size,
        embedded=True,
    )


# ----------------------------------------------------------------------------- /proc sampling

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(path: str) -> list[str] | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # fields from 'state' on (comm may hold spaces)


def process_cpu_seconds(pid: int, children: bool = True) -> float | None:
    """utime + stime (+ the CPU of waited-for children) of ``pid``, in seconds."""
    fields_ = _stat_fields(f"/proc/{pid}/stat")
    if fields_ is None:
        return None
    ticks = int(fields_[11]) + int(fields_[12])
    if children:
        ticks += int(fields_[13]) + int(fields_[14])
    return ticks / CLK_TCK


def thread_cpu_seconds(tid: int) -> float | None:
    fields_ = _stat_fields(f"/proc/self/task/{tid}/stat")
    return None if fields_ is None else (int(fields_[11]) + int(fields_[12])) / CLK_TCK


def descendants(pids: Sequence[int]) -> set[int]:
    """Live descendants of ``pids`` (scans /proc once)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields_ = _stat_fields(f"/proc/{entry.name}/stat")
        if fields_ is not None:
            parents.setdefault(int(fields_[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of ``pid`` in kB."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    values[name] = int(value.split()[0])
    except OSError:
        pass
    return values


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            numbers = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
    total = sum(numbers[:8])  # guest time is already counted in user
    return total - idle, total


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class CpuMeter:
    """Cumulative CPU seconds of a changing set of processes, counting a process only from the
    moment it was first seen (or from the start, for those alive then)."""

    def __init__(self) -> None:
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.dead_total = 0.0

    def update(self, pids: set[int], baseline: bool = False) -> float:
        for pid in pids:
            value = process_cpu_seconds(pid, children=True)
            if value is None:
                continue
            if pid not in self.base:
                self.base[pid] = value if baseline else 0.0
            self.last[pid] = value
        for pid in list(self.last):
            if pid not in pids:  # gone: keep what it used
                self.dead_total += self.last.pop(pid) - self.base.pop(pid)
        return self.dead_total + sum(self.last[p] - self.base[p] for p in self.last)


class Sampler(threading.Thread):
    """Every ``interval_s``: queue depth (timed call), CPU and memory; every 50 ms: how many
    worker slots are inside the handler."""

    TICK_S = 0.05

    def __init__(self, run: "LoadRun", interval_s: float = 1.0) -> None:
        super().__init__(name="loadtest-sampler", daemon=True)
        self.run_ = run
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self.stop_event = threading.Event()
        self.cores = core_count()
        self.workers = CpuMeter()
        self.harness_threads: set[int] = set()
        self.hwm_kb: dict[int, int] = {}
        self._sqs: Any = boto3.client("sqs", region_name=run.target.region)
        self.latest: dict[str, Any] = {}
        self._thread_last: dict[int, float] = {}

    def worker_pids(self) -> set[int]:
        local = self.run_.local
        if local is None or local.pool is None:
            return set()
        pids = set(local.pool.pids)
        return pids | descendants(sorted(pids))

    def _busy_slots(self) -> tuple[int, int]:
        local = self.run_.local
        if local is None or local.pool is None:
            return 0, 0
        values = list(local.pool.busy[:])
        return sum(1 for v in values if v > 0), len(values)

    def _harness_cpu(self) -> float:
        total = 0.0
        for tid in self.harness_threads:
            value = thread_cpu_seconds(tid)
            if value is not None:
                self._thread_last[tid] = value
        for value in self._thread_last.values():
            total += value
        return total

    def run(self) -> None:
        self.harness_threads.add(threading.get_native_id())
        embedded = self.run_.local is not None
        pid = os.getpid()
        previous: dict[str, Any] = {
            "at": time.monotonic(),
            "workers": self.workers.update(self.worker_pids(), baseline=True) if embedded else 0.0,
            "parent": process_cpu_seconds(pid, children=False) or 0.0,
            "harness": self._harness_cpu(),
            "machine": machine_ticks(),
        }
        busy = slots = ticks = 0
        next_sample = time.monotonic() + self.interval_s
        while not self.stop_event.wait(self.TICK_S):
            b, s = self._busy_slots()
            busy, slots, ticks = busy + b, max(slots, s), ticks + 1
            if time.monotonic() < next_sample:
                continue
            next_sample += self.interval_s
            sample = self._sample(previous, embedded, pid)
            sample["busy_fraction"] = busy / (ticks * slots) if ticks and slots else None
            busy = ticks = 0
            self.samples.append(sample)
            self.latest = sample
        if ticks and time.monotonic() - previous["at"] >= 0.1:  # the last, partial interval
            sample = self._sample(previous, embedded, pid)
            sample["busy_fraction"] = busy / (ticks * slots) if slots else None
            self.samples.append(sample)

    def _sample(self, previous: dict[str, Any], embedded: bool, pid: int) -> dict[str, Any]:
        probe_started = time.perf_counter()
        try:
            depth: int | None = _queue_depth(self._sqs, self.run_.target.queue_url)
        except (BotoCoreError, ClientError) as exc:  # a failed probe must not stop the sampler
            log.debug("depth probe failed: %s", exc)
            depth = None
        probe_ms = (time.perf_counter() - probe_started) * 1000
        now = time.monotonic()
        wall = now - previous["at"]
        pids = self.worker_pids() if embedded else set()
        workers = self.workers.update(pids) if embedded else 0.0
        parent = process_cpu_seconds(pid, children=False) or 0.0
        harness = self._harness_cpu()
        machine = machine_ticks()
        capacity = max(wall, 1e-6) * self.cores
        busy_ticks = machine[0] - previous["machine"][0]
        total_ticks = machine[1] - previous["machine"][1]
        machine_util = busy_ticks / total_ticks if total_ticks > 0 else None
        worker_util = (workers - previous["workers"]) / capacity
        parent_util = (parent - previous["parent"]) / capacity
        harness_util = (harness - previous["harness"]) / capacity
        rss = hwm = 0
        for worker in pids:
            memory = memory_kb(worker)
            rss += memory.get("VmRSS", 0)
            self.hwm_kb[worker] = max(self.hwm_kb.get(worker, 0), memory.get("VmHWM", 0))
            hwm = max(hwm, self.hwm_kb[worker])
        counts = self.run_.counts()
        sample: dict[str, Any] = {
            "t": round(time.time() - self.run_.started_at, 3),
            "depth": depth,
            "probe_ms": round(probe_ms, 2),
            **counts,
            "worker_cpu_s": round(workers, 3),
            "workers_util": round(worker_util, 4) if embedded else None,
            "parent_util": round(parent_util, 4),
            "harness_util": round(harness_util, 4),
            "emulator_util": round(max(0.0, parent_util - harness_util), 4) if embedded else None,
            "machine_util": round(machine_util, 4) if machine_util is not None else None,
            "other_util": (
                round(max(0.0, machine_util - worker_util - parent_util), 4)
                if machine_util is not None
                else None
            ),
            "worker_rss_mb": round(rss / 1024, 1) if embedded else None,
            "worker_hwm_mb": round(hwm / 1024, 1) if embedded else None,
            "workers_alive": len(self.run_.local.pool.pids) if embedded else None,
        }
        previous.update(at=now, workers=workers, parent=parent, harness=harness, machine=machine)
        return sample

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def _queue_depth(sqs: Any, queue_url: str) -> int:
    from infra.local.stack import queue_depth

    return queue_depth(sqs, queue_url)


# ----------------------------------------------------------------------------- the run


@dataclass
class LoadOptions:
    mode: str = "upload"  # upload | enqueue
    count: int | None = None  # measured images (after the warm-up)
    duration_s: float | None = None
    rate: float | None = None  # open loop, images/s
    concurrency: int | None = None  # closed loop, images in flight
    warmup: int = 0
    poll_interval_s: float = 0.25  # table polls (accounting; pacing too on a deployed stack)
    drain_timeout_s: float = 300.0
    uploaders: int = 4
    source_bucket: str | None = None  # enqueue mode
    sample_interval_s: float = 1.0


@dataclass
class Sent:
    item: WorkItem
    sent_at: float  # epoch seconds when the PutObject (or SendMessageBatch) returned
    call_ms: float  # how long that call took
    event_time: str | None = None  # enqueue mode: the eventTime put in the message


class LoadTracker(Tracker):
    """The shared tracker, with the DLQ peek on its own (slower) schedule."""

    def poll_table(self) -> None:
        keys = list(self.pending)
        for start in range(0, len(keys), 100):
            self._fetch(keys[start : start + 100])

    def peek_dlq(self) -> None:
        if self.pending:
            self._check_dlq()

    def scan_dlq(self) -> None:
        """Read the whole DLQ (hiding what was read for a minute) for keys still pending."""
        sqs: Any = self._sqs
        empty = 0
        while self.pending and empty < 2:
            messages = sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            empty = empty + 1 if not messages else 0
            for message in messages:
                try:
                    keys = [s.key for s in parse_body(message["Body"])]
                except ValueError:
                    continue
                for key in keys:
                    if key in self.pending:
                        self.pending.pop(key)
                        self.dead.add(key)


@dataclass
class RunData:
    """Everything measured, for the reports."""

    target: Target
    options: LoadOptions
    started_at: float
    ended_at: float
    sent: dict[str, Sent]
    items: dict[str, dict[str, Any]]
    dead: set[str]
    unaccounted: list[str]
    timeseries: list[dict[str, Any]]
    calls: dict[str, list[float]]
    stack: dict[str, Any] = field(default_factory=dict)
    cores: int = 1
    hwm_mb: dict[str, float] = field(default_factory=dict)


class LoadRun:
    """Drive the workload into ``target`` and collect everything the reports need."""

    def __init__(
        self,
        target: Target,
        workload: Workload,
        options: LoadOptions,
        local: Any = None,
        on_progress: Callable[["LoadRun"], None] | None = None,
    ) -> None:
        if options.rate is None and options.concurrency is None:
            raise ValueError("choose an open loop (rate) or a closed loop (concurrency)")
        if options.count is None and options.duration_s is None:
            raise ValueError("choose a count or a duration")
        self.target = target
        self.workload = workload
        self.options = options
        self.local = local
        self.on_progress = on_progress
        self.bucket = target.raw_bucket
        if options.mode == "enqueue":
            self.bucket = options.source_bucket or target.raw_bucket
        self.tracker = LoadTracker(self.bucket, target.table, target.dlq_url)
        pool = Config(max_pool_connections=max(10, options.uploaders + 2))
        self.s3: Any = s3_client(options.uploaders + 2, region=target.region)
        self.sqs: Any = boto3.client("sqs", region_name=target.region, config=pool)
        self.sent: dict[str, Sent] = {}
        self.in_upload = 0
        self.issued = 0
        self.issuing = True
        self.calls: dict[str, list[float]] = {"put_ms": [], "send_ms": [], "poll_ms": []}
        self.started_at = time.time()
        self.first_measured_at: float | None = None
        self.sampler: Sampler | None = None
        self._lock = threading.Lock()
        self._done: list[tuple[Future[list[Sent]], int]] = []
        self._uploader_tids: set[int] = set()
        self._acked_base: int | None = None

    # -- progress figures (read by the sampler and the progress display)
    def counts(self) -> dict[str, int]:
        with self._lock:
            in_upload = self.in_upload
        accounted = len(self.tracker.items) + len(self.tracker.dead)
        # On the embedded stack the workers' shared 'acknowledged' counter tells of a finished
        # message at once, without a call to the emulator; the table poll confirms it later.
        acked = 0
        if self._acked_base is not None and self.local is not None:
            acked = int(self.local.pool.counters[ACKED]) - self._acked_base
        return {
            "issued": self.issued,
            "sent": len(self.sent),
            "accounted": accounted,
            "in_flight": max(in_upload, self.issued - max(accounted, acked)),
        }

    @property
    def total(self) -> int | None:
        if self.options.count is None:
            return None
        return self.options.count + self.workload.warmup

    def _due(self, now: float) -> int:
        """How many items to issue now."""
        options = self.options
        remaining = math.inf if self.total is None else self.total - self.issued
        if options.duration_s is not None and now - self.started_at >= options.duration_s:
            remaining = 0
        if remaining <= 0:
            self.issuing = False
            return 0
        if options.rate is not None:
            due = math.floor((now - self.started_at) * options.rate) + 1 - self.issued
        else:
            assert options.concurrency is not None
            due = options.concurrency - self.counts()["in_flight"]
        return int(max(0, min(due, remaining)))

    def _register_thread(self) -> None:
        self._uploader_tids.add(threading.get_native_id())

    # -- issuing
    def _put(self, item: WorkItem, bucket: str) -> tuple[str, float]:
        started = time.perf_counter()
        response = self.s3.put_object(Bucket=bucket, Key=item.key, Body=item.source.read())
        elapsed = (time.perf_counter() - started) * 1000
        self.calls["put_ms"].append(round(elapsed, 2))
        return str(response.get("ETag", "")).strip('"'), elapsed

    def _upload(self, item: WorkItem) -> list[Sent]:
        _, elapsed = self._put(item, self.bucket)
        return [Sent(item, time.time(), round(elapsed, 2))]

    def _enqueue(self, items: list[WorkItem]) -> list[Sent]:
        """Put the objects (no notification on this bucket), then one SendMessageBatch whose
        eventTime is the moment each object was stored."""
        entries, times = [], {}
        for index, item in enumerate(items):
            etag, _ = self._put(item, self.bucket)
            moment = datetime.now(UTC)
            times[item.key] = moment
            body = backfill_message(self.bucket, item.key, item.source.nbytes, etag, moment)
            entries.append({"Id": str(index), "MessageBody": body})
        started = time.perf_counter()
        result = self.sqs.send_message_batch(QueueUrl=self.target.queue_url, Entries=entries)
        elapsed = (time.perf_counter() - started) * 1000
        self.calls["send_ms"].append(round(elapsed, 2))
        if result.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed: {result['Failed']}")
        at = time.time()
        return [Sent(item, at, round(elapsed, 2), times[item.key].isoformat()) for item in items]

    def _issue(self, pool: ThreadPoolExecutor, count: int) -> None:
        items = [self.workload.next() for _ in range(count)]
        self.issued += count
        with self._lock:
            self.in_upload += count
        if self.options.mode == "enqueue":
            for start in range(0, len(items), 10):
                chunk = items[start : start + 10]
                self._done.append((pool.submit(self._enqueue, chunk), len(chunk)))
        else:
            for item in items:
                self._done.append((pool.submit(self._upload, item), 1))

    def _collect(self) -> None:
        """Register what the upload threads finished (here, so that an item is always either
        uploading or pending in the tracker, never neither)."""
        still = []
        for future, size in self._done:
            if not future.done():
                still.append((future, size))
                continue
            with self._lock:
                self.in_upload -= size
            for sent in future.result():  # an upload error stops the run: it is a harness bug
                self.sent[sent.item.key] = sent
                self.tracker.sent(sent.item.key, sent.sent_at)
                if not sent.item.warmup and self.first_measured_at is None:
                    self.first_measured_at = sent.sent_at
        self._done = still

    def _poll(self) -> None:
        started = time.perf_counter()
        self.tracker.poll_table()
        self.calls["poll_ms"].append(round((time.perf_counter() - started) * 1000, 2))

    def execute(self) -> RunData:
        options = self.options
        if options.mode == "enqueue" and self.target.embedded and options.source_bucket:
            create_bucket(self.s3, options.source_bucket, self.target.region)
        self.sampler = Sampler(self, options.sample_interval_s)
        self.sampler.harness_threads.add(threading.get_native_id())
        if self.local is not None and getattr(self.local, "_monitor", None) is not None:
            monitor_tid = self.local._monitor.native_id
            if monitor_tid is not None:
                self.sampler.harness_threads.add(monitor_tid)
        if self.local is not None and self.local.pool is not None:
            self._acked_base = int(self.local.pool.counters[ACKED])
        self.started_at = time.time()
        self.sampler.start()
        next_poll = next_dlq = next_progress = 0.0
        drain_deadline: float | None = None
        with ThreadPoolExecutor(
            max(1, options.uploaders), "loadtest-upload", initializer=self._register_thread
        ) as pool:
            while True:
                self._collect()
                now = time.time()
                if self.issuing:
                    due = self._due(now)
                    if due:
                        self._issue(pool, due)
                    self.sampler.harness_threads |= self._uploader_tids
                elif drain_deadline is None:
                    drain_deadline = time.monotonic() + options.drain_timeout_s
                mono = time.monotonic()
                if mono >= next_poll:
                    self._poll()
                    interval = options.poll_interval_s
                    next_poll = mono + (interval if len(self.tracker.pending) <= 100 else 0.5)
                if mono >= next_dlq:
                    self.tracker.peek_dlq()
                    next_dlq = mono + 2.0
                if self.on_progress and mono >= next_progress:
                    self.on_progress(self)
                    next_progress = mono + 0.25
                if not self.issuing and not self._done and not self.tracker.pending:
                    break
                if drain_deadline is not None and mono > drain_deadline:
                    log.warning("drain timeout: %d keys still pending", len(self.tracker.pending))
                    break
                time.sleep(self._nap(now))
        self._collect()
        self.tracker.poll_table()
        if self.tracker.pending:
            self.tracker.scan_dlq()
        ended = time.time()
        self.sampler.stop()
        if self.on_progress:
            self.on_progress(self)
        return RunData(
            target=self.target,
            options=options,
            started_at=self.started_at,
            ended_at=ended,
            sent=self.sent,
            items=dict(self.tracker.items),
            dead=set(self.tracker.dead),
            unaccounted=sorted(self.tracker.pending),
            timeseries=self.sampler.samples,
            calls=self.calls,
            cores=self.sampler.cores,
            hwm_mb={str(pid): round(kb / 1024, 1) for pid, kb in self.sampler.hwm_kb.items()},
        )

    def _nap(self, now: float) -> float:
        nap = 0.02
        if self.issuing and self.options.rate is not None:
            next_arrival = self.started_at + self.issued / self.options.rate
            nap = min(max(0.0, next_arrival - now), 0.02)
        return max(0.002, nap)


# ----------------------------------------------------------------------------- samples


def epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso).timestamp()


def image_samples(data: RunData) -> list[dict[str, Any]]:
    """One row per key sent: status, times relative to the run start, latencies, stages."""
    rows = []
    for key, sent in sorted(data.sent.items(), key=lambda kv: kv[1].item.seq):
        item = data.items.get(key)
        source = sent.item.source
        row: dict[str, Any] = {
            "seq": sent.item.seq,
            "key": key,
            "warmup": sent.item.warmup,
            "size_class": source.size_class,
            "format": source.fmt,
            "source_bytes": source.nbytes,
            "source_mp": round(source.width * source.height / 1e6, 3),
            "sent_at": round(sent.sent_at - data.started_at, 4),
            "send_call_ms": sent.call_ms,
            "isolated_engine_ms": source.engine_ms,
        }
        if item is None:
            row["status"] = "DLQ" if key in data.dead else "UNACCOUNTED"
            rows.append(row)
            continue
        event, started, finished = (
            epoch(item.get("event_time")),
            epoch(item.get("started_at")),
            epoch(item.get("finished_at")),
        )
        timings = {k: float(v) for k, v in (item.get("timings_ms") or {}).items()}
        renditions = item.get("renditions") or []
        row.update(
            status=item.get("status"),
            reason=item.get("reason"),
            attempts=item.get("attempts"),
            event_time=item.get("event_time"),
            started_at_iso=item.get("started_at"),
            finished_at_iso=item.get("finished_at"),
            finished_at=round(finished - data.started_at, 4) if finished else None,
            e2e_ms=_ms(finished, sent.sent_at),
            queue_wait_ms=_ms(started, event),
            processing_ms=_ms(finished, started),
            timings_ms=timings,
            engine_ms=round(sum(timings.get(s, 0.0) for s in ENGINE_STAGES), 2)
            if timings
            else None,
            renditions=len(renditions),
            rendition_bytes=sum(int(r.get("bytes", 0)) for r in renditions),
            item_bytes=_item_bytes(item),
        )
        rows.append(row)
    return rows


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000, 1)


def _item_bytes(item: dict[str, Any]) -> int:
    from loadtest.cost import top_level_item_bytes

    return top_level_item_bytes({k: v for k, v in item.items() if k != "sent_at"})
