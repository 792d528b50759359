"""One load-test run: issue the workload into a target, sample it, account for every key.

Images are sent under unique keys, either with PutObject into the raw bucket (the S3
notification path) or by enqueueing backfill-shaped messages for objects put into a source
bucket without notifications (the backfill path). The pace is an open loop (``rate``
images/s, whatever the pipeline does) or a closed loop (``concurrency`` images in flight).
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from core.aws import s3_client
from core.events import backfill_message
from loadtest.sampling import Progress, Sample, Sampler
from loadtest.targets import Target
from loadtest.tracker import LoadTracker
from loadtest.workload import WorkItem, Workload

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

log = logging.getLogger("imgpipe.loadtest")

SEND_BATCH = 10  # SendMessageBatch takes at most 10 entries


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


@dataclass(frozen=True)
class StackInfo:
    """How the target was set up, for the report (``-`` where it does not apply)."""

    command: str
    concurrency: int | None
    rate: float | None
    workers: int | str  # "Lambda" on a deployed stack
    threads: int | str
    batch_size: int
    iam_enforced: bool | None = None  # embedded stack only, here and below
    batch_window_s: float | None = None


@dataclass
class Sent:
    item: WorkItem
    sent_at: float  # epoch seconds when the PutObject (or SendMessageBatch) returned
    call_ms: float  # how long that call took


@dataclass
class CallTimes:
    """Milliseconds of the harness's own calls to the stack."""

    put_ms: list[float] = field(default_factory=list)
    send_ms: list[float] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
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
    timeseries: list[Sample]
    calls: CallTimes
    stack: StackInfo | None = None
    cores: int = 1
    hwm_mb: dict[str, float] = field(default_factory=dict)


class LoadRun:
    """Drive the workload into ``target`` and collect everything the reports need."""

    def __init__(
        self,
        target: Target,
        workload: Workload,
        options: LoadOptions,
        local: "LocalStack | None" = None,
        on_progress: Callable[["LoadRun"], None] | None = None,
    ) -> None:
        if options.rate is None and options.concurrency is None:
            raise ValueError("choose an open loop (rate) or a closed loop (concurrency)")
        if options.count is None and options.duration_s is None:
            raise ValueError("choose a count or a duration")
        self.target = target
        self.workload = workload
        self.options = options
        self.workers = local.pool if local is not None else None
        self.monitor_thread_id = local.monitor_thread_id if local is not None else None
        self.on_progress = on_progress
        self.bucket = target.raw_bucket
        if options.mode == "enqueue":
            self.bucket = options.source_bucket or target.raw_bucket
        self.tracker = LoadTracker(self.bucket, target.table, target.dlq_url, target.region)
        pool = Config(max_pool_connections=max(10, options.uploaders + 2))
        self.s3: Any = s3_client(options.uploaders + 2, region=target.region)
        self.sqs: Any = boto3.client("sqs", region_name=target.region, config=pool)
        self.sent: dict[str, Sent] = {}
        self.in_upload = 0
        self.issued = 0
        self.issuing = True
        self.calls = CallTimes()
        self.started_at = time.time()
        self.sampler: Sampler | None = None
        self._lock = threading.Lock()
        self._done: list[tuple[Future[list[Sent]], int]] = []
        self._uploader_tids: set[int] = set()
        self._acked_base: int | None = None

    # -- progress figures (read by the sampler and the progress display)
    def progress(self) -> Progress:
        with self._lock:
            in_upload = self.in_upload
        accounted = self.tracker.accounted
        # On the embedded stack the workers' shared 'acknowledged' counter tells of a finished
        # message at once, without a call to the emulator; the table poll confirms it later.
        acked = 0
        if self._acked_base is not None and self.workers is not None:
            acked = self.workers.acknowledged - self._acked_base
        return Progress(
            issued=self.issued,
            sent=len(self.sent),
            accounted=accounted,
            in_flight=max(in_upload, self.issued - max(accounted, acked)),
        )

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
            due = options.concurrency - self.progress().in_flight
        return int(max(0, min(due, remaining)))

    def _register_thread(self) -> None:
        self._uploader_tids.add(threading.get_native_id())

    # -- issuing
    def _put(self, item: WorkItem, bucket: str) -> tuple[str, float]:
        started = time.perf_counter()
        response = self.s3.put_object(Bucket=bucket, Key=item.key, Body=item.source.read())
        elapsed = (time.perf_counter() - started) * 1000
        self.calls.put_ms.append(round(elapsed, 2))
        return str(response.get("ETag", "")).strip('"'), elapsed

    def _upload(self, item: WorkItem) -> list[Sent]:
        _, elapsed = self._put(item, self.bucket)
        return [Sent(item, time.time(), round(elapsed, 2))]

    def _enqueue(self, items: list[WorkItem]) -> list[Sent]:
        """Put the objects (no notification on this bucket), then one SendMessageBatch whose
        eventTime is the moment each object was stored."""
        entries = []
        for index, item in enumerate(items):
            etag, _ = self._put(item, self.bucket)
            moment = datetime.now(UTC)
            body = backfill_message(self.bucket, item.key, item.source.nbytes, etag, moment)
            entries.append({"Id": str(index), "MessageBody": body})
        started = time.perf_counter()
        result = self.sqs.send_message_batch(QueueUrl=self.target.queue_url, Entries=entries)
        elapsed = (time.perf_counter() - started) * 1000
        self.calls.send_ms.append(round(elapsed, 2))
        if result.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed: {result['Failed']}")
        at = time.time()
        return [Sent(item, at, round(elapsed, 2)) for item in items]

    def _issue(self, pool: ThreadPoolExecutor, count: int) -> None:
        items = [self.workload.next() for _ in range(count)]
        self.issued += count
        with self._lock:
            self.in_upload += count
        if self.options.mode == "enqueue":
            for start in range(0, len(items), SEND_BATCH):
                chunk = items[start : start + SEND_BATCH]
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
        self._done = still

    def _poll(self) -> None:
        started = time.perf_counter()
        self.tracker.poll_table()
        self.calls.poll_ms.append(round((time.perf_counter() - started) * 1000, 2))

    # -- the run
    def execute(self) -> RunData:
        options = self.options
        if options.mode == "enqueue" and self.target.embedded and options.source_bucket:
            # deferred: infra.local.provision loads the template model with cfn-lint (1-4 s),
            # which only the embedded stack needs, and it has imported it already
            from infra.local.provision import create_bucket

            create_bucket(self.s3, options.source_bucket, self.target.region)
        sampler = Sampler(
            self.target.queue_url,
            self.target.region,
            self.progress,
            self.workers,
            options.sample_interval_s,
        )
        sampler.harness_threads.add(threading.get_native_id())
        if self.monitor_thread_id is not None:
            sampler.harness_threads.add(self.monitor_thread_id)
        if self.workers is not None:
            self._acked_base = self.workers.acknowledged
        self.sampler = sampler
        self.started_at = time.time()
        sampler.start_at(self.started_at)
        with ThreadPoolExecutor(
            max(1, options.uploaders), "loadtest-upload", initializer=self._register_thread
        ) as pool:
            self._drive(pool, sampler)
        self._collect()
        self.tracker.poll_table()
        if self.tracker.pending:
            self.tracker.scan_dlq()
        ended = time.time()
        sampler.stop()
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
            timeseries=sampler.samples,
            calls=self.calls,
            cores=sampler.cores,
            hwm_mb={str(pid): round(kb / 1024, 1) for pid, kb in sampler.peak_kb.items()},
        )

    def _drive(self, pool: ThreadPoolExecutor, sampler: Sampler) -> None:
        """Issue what is due, poll the table and the DLQ, until everything is accounted for or
        the stragglers time out."""
        options = self.options
        next_poll = next_dlq = next_progress = 0.0
        drain_deadline: float | None = None
        while True:
            self._collect()
            now = time.time()
            if self.issuing:
                due = self._due(now)
                if due:
                    self._issue(pool, due)
                sampler.harness_threads |= self._uploader_tids
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
                return
            if drain_deadline is not None and mono > drain_deadline:
                log.warning("drain timeout: %d keys still pending", len(self.tracker.pending))
                return
            time.sleep(self._nap(now))

    def _nap(self, now: float) -> float:
        nap = 0.02
        if self.issuing and self.options.rate is not None:
            next_arrival = self.started_at + self.issued / self.options.rate
            nap = min(max(0.0, next_arrival - now), 0.02)
        return max(0.002, nap)
