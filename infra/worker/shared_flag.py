"""A stop flag shared between processes that no dead process or signal handler can block."""

import time
from typing import Any

FLAG_POLL_S = 0.05


class SharedFlag:
    """A stop flag in shared memory, polled, with no lock: ``multiprocessing.Event`` takes one
    in ``is_set()`` and ``set()``, so a process killed while holding it, or a signal handler
    that sets it while its own thread holds it, deadlocks; and its ``set()`` waits for every
    waiter to wake, which a killed process never does."""

    def __init__(self, context: Any) -> None:
        self._value = context.RawValue("b", 0)

    def is_set(self) -> bool:
        return bool(self._value.value)

    def set(self) -> None:
        self._value.value = 1

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._value.value:
            left = FLAG_POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(FLAG_POLL_S, left))
        return True
