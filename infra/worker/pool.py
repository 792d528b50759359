"""Worker processes that play concurrent Lambda instances behind the event source mapping."""

import logging
import multiprocessing
import time
from typing import Any

from infra.worker.poller import ACKED, READY, RETRIED, PollerConfig, worker_main
from infra.worker.shared_flag import SharedFlag

log = logging.getLogger("imgpipe.poller")


class WorkerPool:
    """N worker processes; a worker that dies is replaced (its messages return on their own
    after the visibility timeout, as they would from a crashed Lambda instance)."""

    def __init__(self, config: PollerConfig, processes: int) -> None:
        self.config = config
        self.size = max(1, processes)
        self._context = multiprocessing.get_context("spawn")
        self._stop = SharedFlag(self._context)  # set from a SIGTERM handler too
        self._counters = self._context.Array("l", 3)  # READY, ACKED, RETRIED
        self._busy = self._context.Array("l", self.size)  # messages in each worker's batch
        self.workers: list[multiprocessing.process.BaseProcess] = []
        self.restarts = 0

    def start(self) -> None:
        self.workers = [self._spawn(slot) for slot in range(self.size)]

    def _spawn(self, slot: int) -> multiprocessing.process.BaseProcess:
        self._busy[slot] = 0
        process = self._context.Process(
            target=worker_main,
            args=(self.config, self._stop, self._counters, self._busy, slot),
            daemon=True,
        )
        process.start()
        return process

    def supervise(self) -> None:
        """Replace dead workers; call this periodically from the parent."""
        if self._stop.is_set():
            return
        for index, process in enumerate(self.workers):
            if not process.is_alive():
                log.warning(
                    "worker %s exited (%s); starting a new one", process.pid, process.exitcode
                )
                self.workers[index] = self._spawn(index)
                self.restarts += 1

    def wait_ready(self, timeout_s: float = 60) -> bool:
        """Block until every worker has imported the handler (a warm start)."""
        deadline = time.monotonic() + timeout_s
        while self._counters[READY] < self.size and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self._counters[READY] >= self.size)

    @property
    def acknowledged(self) -> int:
        """Messages deleted after a successful invocation, across all workers so far."""
        return int(self._counters[ACKED])

    def busy_slots(self) -> list[int]:
        """The number of messages in each worker's batch now (0: polling)."""
        return [int(value) for value in self._busy[:]]

    def status(self) -> dict[str, Any]:
        busy = self.busy_slots()
        return {
            "workers": [
                {"pid": p.pid, "alive": p.is_alive(), "batch": busy[slot]}
                for slot, p in enumerate(self.workers)
            ],
            "acknowledged": self.acknowledged,
            "left_for_retry": self._counters[RETRIED],
            "restarts": self.restarts,
        }

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.workers if p.pid is not None]

    def stop(self, grace_s: float | None = None) -> None:
        """Stop polling, let the batches in flight finish, then exit."""
        self._stop.set()
        deadline = time.monotonic() + (
            grace_s if grace_s is not None else self.config.function_timeout_s
        )
        for process in self.workers:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.workers:
            if process.is_alive():  # past the function timeout: Lambda would cut it off too
                process.kill()
                process.join()
