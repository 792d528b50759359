"""``--max-rate``: a token bucket shared by every sender thread and process."""

import threading
import time
from typing import Any, Final

from infra.backfill.work import SQS_BATCH, Flag

LOCK_TIMEOUT_S: Final = 1.0


class TokenBucket:
    """Messages per second across all senders. A caller reserves tokens and sleeps off any
    debt, so batches larger than the burst still average exactly ``rate``."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Any = time.monotonic,
        state: Any = None,
    ) -> None:
        """``state``: the shared memory of a bucket in another process (see ``share``)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(SQS_BATCH, rate / 10))
        self._clock = clock
        self._state: Any = [self.capacity, clock()] if state is None else state  # tokens, last
        self._lock: Any = threading.Lock() if state is None else state.get_lock()

    def share(self, context: Any) -> Any:
        """Move the state into a ``multiprocessing`` Array, for buckets in sender processes
        (``CLOCK_MONOTONIC`` is system-wide, so their clocks agree)."""
        with self._lock:
            state = context.Array("d", list(self._state))
        self._state, self._lock = state, state.get_lock()
        return state

    def reserve(self, count: int) -> float:
        """Take ``count`` tokens; return how long to wait before using them."""
        # A bounded wait: a sender process killed while holding a shared lock must not hang
        # the others (a lost update then costs one batch of accuracy, nothing more).
        locked = self._lock.acquire(timeout=LOCK_TIMEOUT_S)
        try:
            state = self._state
            now = self._clock()
            tokens = min(self.capacity, state[0] + (now - state[1]) * self.rate) - count
            state[0], state[1] = tokens, now
            return -tokens / self.rate if tokens < 0 else 0.0
        finally:
            if locked:
                self._lock.release()

    def acquire(self, count: int, stop: Flag | None = None) -> bool:
        """Wait for ``count`` tokens; False if ``stop`` was set meanwhile."""
        wait = self.reserve(count)
        if wait <= 0:
            return not (stop and stop.is_set())
        if stop is None:
            time.sleep(wait)
            return True
        return not stop.wait(wait)
