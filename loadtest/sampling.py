"""CPU, memory and queue depth while a load test runs, sampled on a thread.

Every interval: the queue depth (a timed call, so the emulator's latency shows), the CPU used
by the worker processes and their children, by this process (the harness and, on the embedded
stack, moto, told apart by the harness's own threads) and by the rest of the machine, and the
workers' resident memory. Every 50 ms: how many workers are inside the handler.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import boto3
import psutil
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("imgpipe.loadtest")


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def process_cpu_seconds(pid: int, children: bool = True) -> float | None:
    """User + system CPU of ``pid`` (plus that of its waited-for children), in seconds."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    total = float(times.user + times.system)
    return total + times.children_user + times.children_system if children else total


def thread_cpu_seconds() -> dict[int, float]:
    """User + system CPU of each thread of this process, by native thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def descendants(pids: Iterable[int]) -> set[int]:
    """Live descendants of ``pids``."""
    found: set[int] = set()
    for pid in pids:
        try:
            found.update(child.pid for child in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            continue
    return found


def rss_kb(pid: int) -> int:
    """Resident set of ``pid`` in kB (0 when it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss) // 1024
    except psutil.Error:
        return 0


def peak_rss_kb(pid: int) -> int:
    """Peak resident set (VmHWM) of ``pid`` in kB (0 when it is gone). psutil has no peak RSS
    on Linux, so this one figure is read from /proc."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot; guest time is already in
    user time, and I/O wait counts as idle."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - idle, total


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


class WorkerProcesses(Protocol):
    """The embedded stack's worker pool, as the sampler sees it."""

    @property
    def pids(self) -> list[int]: ...

    def busy_slots(self) -> list[int]: ...


@dataclass(frozen=True)
class Progress:
    """The harness's own counts, recorded with every sample."""

    issued: int
    sent: int
    accounted: int
    in_flight: int


@dataclass(frozen=True)
class Sample:
    """One sampled interval; utilisations are fractions of all cores over the interval."""

    t: float  # seconds since the start of the run, at the end of the interval
    depth: int | None  # visible + in-flight messages (None: the probe failed)
    probe_ms: float
    issued: int
    sent: int
    accounted: int
    in_flight: int
    worker_cpu_s: float  # cumulative, since the start
    workers_util: float | None  # None on a deployed stack (here and below)
    parent_util: float
    harness_util: float
    emulator_util: float | None
    machine_util: float | None
    other_util: float | None
    worker_rss_mb: float | None
    worker_hwm_mb: float | None
    workers_alive: int | None
    busy_fraction: float | None  # of worker slots inside the handler


@dataclass(frozen=True)
class _Reading:
    """Cumulative counters at one moment; a sample is the difference of two."""

    at: float  # time.monotonic()
    pids: set[int]
    workers: float
    parent: float
    harness: float
    machine: tuple[float, float]


class Sampler(threading.Thread):
    TICK_S = 0.05

    def __init__(
        self,
        queue_url: str,
        region: str,
        progress: Callable[[], Progress],
        workers: WorkerProcesses | None = None,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(name="loadtest-sampler", daemon=True)
        self.queue_url = queue_url
        self.progress = progress
        self.started_at = 0.0  # epoch seconds: sample times count from here
        self.workers = workers  # None on a deployed stack
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.latest: Sample | None = None
        self.cores = core_count()
        self.harness_threads: set[int] = set()  # native ids; the rest of this process is moto
        self.peak_kb: dict[int, int] = {}  # worker pid -> its peak RSS
        self._stop_event = threading.Event()
        self._worker_cpu = CpuMeter()
        self._thread_cpu: dict[int, float] = {}  # kept after a thread ends
        self._sqs: Any = boto3.client("sqs", region_name=region)

    def start_at(self, started_at: float) -> None:
        """Start sampling, with sample times counted from ``started_at`` (epoch seconds)."""
        self.started_at = started_at
        self.start()

    def run(self) -> None:
        self.harness_threads.add(threading.get_native_id())
        previous = self._read(baseline=True)
        busy = slots = ticks = 0
        next_sample = time.monotonic() + self.interval_s
        while not self._stop_event.wait(self.TICK_S):
            values = self.workers.busy_slots() if self.workers is not None else []
            busy, slots = busy + sum(1 for v in values if v > 0), max(slots, len(values))
            ticks += 1
            if time.monotonic() < next_sample:
                continue
            next_sample += self.interval_s
            previous = self._record(previous, busy / (ticks * slots) if slots else None)
            busy = ticks = 0
        if ticks and time.monotonic() - previous.at >= 0.1:  # the last, partial interval
            self._record(previous, busy / (ticks * slots) if slots else None)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def _read(self, baseline: bool = False) -> _Reading:
        pids: set[int] = set()
        if self.workers is not None:
            pids = set(self.workers.pids)
            pids |= descendants(sorted(pids))
        for tid, seconds in thread_cpu_seconds().items():
            if tid in self.harness_threads:
                self._thread_cpu[tid] = seconds
        return _Reading(
            at=time.monotonic(),
            pids=pids,
            workers=self._worker_cpu.update(pids, baseline=baseline),
            parent=process_cpu_seconds(os.getpid(), children=False) or 0.0,
            harness=sum(self._thread_cpu.values()),
            machine=machine_cpu_seconds(),
        )

    def _probe_depth(self) -> tuple[int | None, float]:
        from infra.local.stack import queue_depth  # deferred: it imports moto (~1 s)

        started = time.perf_counter()
        try:
            depth: int | None = queue_depth(self._sqs, self.queue_url)
        except (BotoCoreError, ClientError) as exc:  # a failed probe must not stop the sampler
            log.debug("depth probe failed: %s", exc)
            depth = None
        return depth, (time.perf_counter() - started) * 1000

    def _record(self, previous: _Reading, busy_fraction: float | None) -> _Reading:
        depth, probe_ms = self._probe_depth()
        now = self._read()
        capacity = max(now.at - previous.at, 1e-6) * self.cores
        busy_s = now.machine[0] - previous.machine[0]
        total_s = now.machine[1] - previous.machine[1]
        machine_util = busy_s / total_s if total_s > 0 else None
        worker_util = (now.workers - previous.workers) / capacity
        parent_util = (now.parent - previous.parent) / capacity
        harness_util = (now.harness - previous.harness) / capacity
        rss = sum(rss_kb(pid) for pid in now.pids)
        for pid in now.pids:
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), peak_rss_kb(pid))
        hwm = max((self.peak_kb[pid] for pid in now.pids), default=0)
        embedded = self.workers is not None
        sample = Sample(
            t=round(time.time() - self.started_at, 3),
            depth=depth,
            probe_ms=round(probe_ms, 2),
            **asdict(self.progress()),
            worker_cpu_s=round(now.workers, 3),
            workers_util=round(worker_util, 4) if embedded else None,
            parent_util=round(parent_util, 4),
            harness_util=round(harness_util, 4),
            emulator_util=round(max(0.0, parent_util - harness_util), 4) if embedded else None,
            machine_util=round(machine_util, 4) if machine_util is not None else None,
            other_util=(
                round(max(0.0, machine_util - worker_util - parent_util), 4)
                if machine_util is not None
                else None
            ),
            worker_rss_mb=round(rss / 1024, 1) if embedded else None,
            worker_hwm_mb=round(hwm / 1024, 1) if embedded else None,
            workers_alive=len(self.workers.pids) if self.workers is not None else None,
            busy_fraction=busy_fraction,
        )
        self.samples.append(sample)
        self.latest = sample
        return now
