"""One backfill run: the producer thread, the sender threads and processes, and the state.

``build_source`` picks the source the command line asks for.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from queue import Full, Queue
from typing import IO, Any

from core.events import iso_ms
from infra.backfill.clients import ClientFactory, Clients, describe_error
from infra.backfill.inventory import InventorySource, load_manifest
from infra.backfill.options import BackfillError, Options
from infra.backfill.processes import SenderProcesses
from infra.backfill.ratelimit import TokenBucket
from infra.backfill.sender import Sender
from infra.backfill.sources import FileSource, ListingSource, Source
from infra.backfill.state import STATE_VERSION, Tracker, read_state, write_json_atomic
from infra.backfill.summary import Snapshot, Summary
from infra.backfill.work import UNIT_SIZE, Unit, WorkQueue

Tick = Callable[[Snapshot], None]


class Backfill:
    """One backfill run. ``run()`` blocks; ``stop()`` (e.g. on Ctrl-C) stops listing, lets
    in-flight requests finish, saves the state and returns; ``abort()`` returns at once.

    With a ``client_factory`` (a module-level function, so that it pickles) and
    ``options.processes`` > 1, senders also run in that many - 1 spawned processes, each with
    its own clients: the botocore work per call is CPU-bound and holds the GIL. This process
    keeps the source, the tracker and the state, and sends too.
    """

    def __init__(
        self,
        options: Options,
        source: Source,
        clients: Clients,
        client_factory: ClientFactory | None = None,
    ) -> None:
        processes = max(1, options.processes) if client_factory and not options.dry_run else 1
        # The processes that will really run: the thread shares (``Options.share``) follow it.
        self.options = options = replace(options, processes=processes)
        self.source = source
        self.client_factory = client_factory
        # Events for this process's threads (cheap to wait on); the run loop passes a stop on
        # to the sender processes' shared flags.
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.bucket_limit = TokenBucket(options.max_rate) if options.max_rate else None
        self.sender = Sender(options, clients, self._stop, self._abort, self.bucket_limit)
        self._errors: list[str] = []
        self._interrupted = False
        self._started = time.monotonic()
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=50)
        self.state: dict[str, Any] | None = None
        self.tracker = Tracker(None)
        if options.state_path is not None and not options.dry_run:
            self.state = read_state(options.state_path)
        if self.state is not None:
            if self.state.get("source") != source.signature():
                raise BackfillError(
                    f"{options.state_path} belongs to another backfill "
                    f"({self.state.get('source')}); use another --state file"
                )
            self.tracker = Tracker(self.state.get("position"), self.state.get("counts"))

    # --- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._interrupted = True
        self._stop.set()

    def abort(self) -> None:
        self.stop()
        self._abort.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def fail(self, error: str) -> None:
        """Record an error that ends the run (the state is still saved)."""
        self._errors.append(error)
        self._stop.set()

    # --- the run -------------------------------------------------------------------------------

    def run(self, tick: Tick | None = None, tick_s: float = 0.2) -> Summary:
        if self.state is not None and self.state.get("complete"):
            return self._summary(complete=True, interrupted=False)
        opts = self.options
        local_senders = opts.share(opts.concurrency)
        all_senders = local_senders * opts.processes
        queue_size = opts.queue_units or 2 * all_senders
        workers = self._processes(local_senders, queue_size) if opts.processes > 1 else None
        work: WorkQueue = workers.work if workers is not None else Queue(maxsize=queue_size)
        heads = ThreadPoolExecutor(
            opts.share(opts.head_concurrency), thread_name_prefix="backfill-head"
        )
        report = self.tracker.unit_done
        threads = [
            self._thread("backfill-list", self._produce, work, all_senders),
            *(
                self._thread(f"backfill-send-{i}", self.sender.loop, work, heads, report)
                for i in range(local_senders)
            ),
            *(workers.threads if workers is not None else ()),
        ]
        for thread in threads:
            thread.start()
        try:
            self._supervise(threads, workers, tick, tick_s)
        finally:
            heads.shutdown(wait=not self._abort.is_set(), cancel_futures=True)
            if workers is not None:
                workers.close(abort=self._abort.is_set())
        complete = (
            not self._stop.is_set() and not self._errors and not self.tracker.snapshot().open_chunks
        )
        self._save(-1, complete=complete)
        self.sender.failures.close()
        if tick is not None:
            tick(self.snapshot())
        return self._summary(complete=complete, interrupted=self._interrupted)

    def _processes(self, threads_each: int, queue_size: int) -> SenderProcesses:
        assert self.client_factory is not None
        return SenderProcesses(
            self.options,
            self.client_factory,
            count=self.options.processes - 1,
            threads_each=threads_each,
            queue_size=queue_size,
            limit=self.bucket_limit,
            now=self.sender.now,
            on_done=self.tracker.unit_done,
            on_error=self.fail,
        )

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        return threading.Thread(target=self._guard, args=(target, *args), name=name, daemon=True)

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - a bug or a fatal source error: stop all, say so
            self.fail(f"{threading.current_thread().name}: {describe_error(exc)}")

    def _supervise(
        self,
        threads: list[threading.Thread],
        workers: SenderProcesses | None,
        tick: Tick | None,
        tick_s: float,
    ) -> None:
        """Until every thread has ended or an abort: pass a stop on to the sender processes,
        tick, and save the state every ``state_interval``."""
        last_save = time.monotonic()
        saved_version = -1
        while not self._abort.is_set():
            if workers is not None and self._stop.is_set():
                workers.stop()
            alive = [t for t in threads if t.is_alive()]
            if not alive:
                break
            alive[0].join(tick_s)
            self._note_rate()
            if tick is not None:
                tick(self.snapshot())
            if time.monotonic() - last_save >= self.options.state_interval:
                saved_version = self._save(saved_version)
                last_save = time.monotonic()

    # --- producer ------------------------------------------------------------------------------

    def _produce(self, work: WorkQueue, senders: int) -> None:
        accepts = self.options.filters.accepts
        tracker = self.tracker
        try:
            for position, items in self.source.chunks(tracker.position):
                if self._stop.is_set():
                    return
                chunk = tracker.open(position)
                passed = [item for item in items if accepts(item)]
                for start in range(0, len(passed), UNIT_SIZE):
                    tracker.add_unit(chunk)
                    if not self._put(work, Unit(chunk.id, passed[start : start + UNIT_SIZE])):
                        return  # stopped mid-chunk: it stays open, so it is not committed
                tracker.seal(chunk, len(items), len(items) - len(passed))
        finally:
            if not self._stop.is_set():
                for _ in range(senders):
                    self._put(work, None)  # the end marker, one per sender

    def _put(self, work: WorkQueue, unit: Unit | None) -> bool:
        while not self._stop.is_set():
            try:
                work.put(unit, timeout=0.2)
                return True
            except Full:
                continue
        return False

    # --- state, progress, summary ------------------------------------------------------------

    def _save(self, saved_version: int, complete: bool = False) -> int:
        if self.options.state_path is None or self.options.dry_run:
            return saved_version
        tracked = self.tracker.snapshot()
        version = self.tracker.version
        if version == saved_version and not complete:
            return saved_version
        self.sender.failures.sync()  # failures must be on disk before the position passes them
        write_json_atomic(
            self.options.state_path,
            {
                "version": STATE_VERSION,
                "source": self.source.signature(),
                "bucket": self.options.bucket,
                "queue_url": self.options.queue_url,
                "position": tracked.position,
                "counts": tracked.committed,
                "complete": complete,
                "updated_at": iso_ms(datetime.now(UTC)),
            },
        )
        return version

    def _note_rate(self) -> None:
        self._rate_window.append((time.monotonic(), self.tracker.live["sent"]))

    def snapshot(self) -> Snapshot:
        live = self.tracker.snapshot().live
        elapsed = time.monotonic() - self._started
        rate = 0.0
        if len(self._rate_window) >= 2:
            (t0, n0), (t1, n1) = self._rate_window[0], self._rate_window[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        done, total = self.source.progress()
        eta = None
        if total and done and elapsed > 0:
            eta = max(0.0, (total - done) / (done / elapsed))
        return Snapshot(live, elapsed, rate, done, total, eta, self._stop.is_set())

    def _summary(self, complete: bool, interrupted: bool) -> Summary:
        tracked = self.tracker.snapshot()
        committed, live = tracked.committed, tracked.live
        elapsed = time.monotonic() - self._started
        options = self.options
        return Summary(
            source=self.source.signature(),
            bucket=options.bucket,
            queue_url=options.queue_url,
            dry_run=options.dry_run,
            counts=committed,
            this_run=live,
            elapsed_s=round(elapsed, 3),
            rate_per_s=round(live["sent"] / elapsed, 1) if elapsed > 0 else 0.0,
            complete=complete,
            interrupted=interrupted,
            resumed=self.state is not None,
            position=tracked.position,
            state_file=str(options.state_path) if options.state_path else None,
            failures_file=(
                str(options.failures_path) if committed["failed"] or live["failed"] else None
            ),
            error="; ".join(self._errors) or None,
            sample=list(self.sender.sample),
        )


def build_source(
    options: Options,
    clients: Clients,
    *,
    from_file: str | None = None,
    inventory: str | None = None,
    stdin: IO[bytes] | None = None,
) -> Source:
    if from_file is not None and inventory is not None:
        raise BackfillError("--from-file and --inventory are exclusive")
    if from_file is not None:
        return FileSource(from_file, stdin)
    if inventory is not None:
        manifest = load_manifest(inventory, clients.s3)
        if manifest.source_bucket and manifest.source_bucket != options.bucket:
            raise BackfillError(
                f"the inventory is of bucket {manifest.source_bucket}, not {options.bucket}"
            )
        return InventorySource(manifest, clients.s3, options.bucket)
    return ListingSource(clients.s3, options.bucket, options.filters.prefix, options.page_size)
