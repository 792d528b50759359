"""Sender processes: the same ``Sender`` as in the main process, on its own clients, fed from
a ``multiprocessing`` queue of work units.

Each SendMessageBatch costs about 0.5 ms of botocore CPU (serialising, signing, parsing) under
the GIL, so one process tops out near 20,000 keys/s whatever its thread count. The units carry
chunk ids; each process reports ``(chunk id, counts)`` back, and only the main process moves
the resumable position. A process that dies takes its units' reports with it, so their chunks
stay uncommitted and a rerun sends them again: duplicates, never a gap.
"""

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.context import SpawnProcess
from queue import Empty
from typing import Any, Final

from infra.backfill.clients import ClientFactory, describe_error
from infra.backfill.options import Options
from infra.backfill.ratelimit import TokenBucket
from infra.backfill.sender import Sender
from infra.backfill.work import Counts, Report
from infra.worker.shared_flag import SharedFlag

POLL_S: Final = 0.2


@dataclass(frozen=True)
class SenderSetup:
    """What a sender process is started with (pickled into it)."""

    options: Options
    client_factory: ClientFactory
    shared_limit: Any  # the token bucket's shared state, or None
    threads: int
    now: datetime  # the event time of keys whose source gives none, as in the main process
    parent: int  # the main process's pid: a sender process ends when it is gone


class SenderProcesses:
    """``count`` spawned sender processes and the thread that collects their reports:
    ``on_done(chunk id, counts)`` for each unit sent, ``on_error(text)`` for what ends the
    run."""

    def __init__(
        self,
        options: Options,
        client_factory: ClientFactory,
        *,
        count: int,
        threads_each: int,
        queue_size: int,
        limit: TokenBucket | None,
        now: datetime,
        on_done: Report,
        on_error: Callable[[str], None],
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self.on_done, self.on_error = on_done, on_error
        self.work: Any = context.Queue(queue_size)
        self._results: Any = context.Queue()
        self._stop = SharedFlag(context)
        self._abort = SharedFlag(context)
        setup = SenderSetup(
            options=options,
            client_factory=client_factory,
            shared_limit=limit.share(context) if limit is not None else None,
            threads=threads_each,
            now=now,
            parent=os.getpid(),
        )
        self.processes: list[SpawnProcess] = [
            context.Process(
                target=sender_process,
                args=(setup, self.work, self._results, self._stop, self._abort),
                name=f"backfill-sender-{n + 1}",
                daemon=True,
            )
            for n in range(count)
        ]
        for process in self.processes:
            process.start()
        self.threads = [
            threading.Thread(target=self._collect, name="backfill-collect", daemon=True)
        ]

    def stop(self) -> None:
        self._stop.set()

    def close(self, abort: bool) -> None:
        if abort:
            self._stop.set()
            self._abort.set()
            for process in self.processes:
                process.kill()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        # Units left in the queue after a stop are uncommitted: drop them, do not wait.
        self.work.cancel_join_thread()
        self.work.close()
        self._results.close()

    def _collect(self) -> None:
        """Apply the processes' reports until every process has ended, then the rest."""
        while any(p.is_alive() for p in self.processes):
            self._apply(timeout=POLL_S)
        while self._apply(timeout=POLL_S):  # whatever an ended process flushed before exiting
            pass
        for process in self.processes:
            if process.exitcode not in (0, None):
                self.on_error(f"{process.name} ended with exit code {process.exitcode}")

    def _apply(self, timeout: float) -> bool:
        try:
            kind, chunk_id, payload = self._results.get(timeout=timeout)
        except Empty:
            return False
        if kind == "done":
            self.on_done(chunk_id, payload)
        else:
            self.on_error(payload)
        return True


def sender_process(
    setup: SenderSetup, work: Any, results: Any, stop: SharedFlag, abort: SharedFlag
) -> None:
    """A sender process's body. Ctrl-C reaches the whole process group; only the main
    process acts on it (it stops the senders through ``stop``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    options = setup.options

    def parent_alive() -> bool:
        return os.getppid() == setup.parent

    clients = setup.client_factory(options)
    limit = TokenBucket(options.max_rate, state=setup.shared_limit) if options.max_rate else None
    sender = Sender(options, clients, stop, abort, limit, alive=parent_alive, now=setup.now)

    def report(chunk_id: int, counts: Counts) -> None:
        if counts["failed"]:
            sender.failures.sync()  # on disk before the main process can commit past them
        results.put(("done", chunk_id, counts))

    heads = ThreadPoolExecutor(options.share(options.head_concurrency))

    def send() -> None:
        try:
            sender.loop(work, heads, report)
        except BaseException as exc:  # noqa: BLE001 - reported: the main process stops the run
            name = threading.current_thread().name
            results.put(("error", 0, f"{name} (pid {os.getpid()}): {describe_error(exc)}"))
            stop.set()

    senders = [threading.Thread(target=send, name=f"sender-{n}") for n in range(setup.threads)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    heads.shutdown(wait=not abort.is_set(), cancel_futures=True)
    sender.failures.close()
    clients.close()
    if not parent_alive():
        results.cancel_join_thread()  # nobody reads them any more: do not block the exit
