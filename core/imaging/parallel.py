"""Encoding a record's renditions on idle cores while its next rendition is resized.

Pillow releases the GIL in its resamplers and encoders, so one record can use a second core:
the resize chain stays on the record's own thread (each step needs the previous one) and the
encodes go to one executor shared by the process. Sharing it bounds the encodes in flight to
its size whatever the number of records, so memory stays within the per-record budget: a
record holds at most its own renditions' pixels (a few MB) while they wait.
"""

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from PIL import Image

T = TypeVar("T")


class SharedExecutor(ThreadPoolExecutor):
    """A thread pool that knows whether a thread is free (``idle``): splitting a resize into
    bands costs about 30 % more CPU, which pays only when a core would otherwise wait."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads, thread_name_prefix="imgpipe-encode")
        self._size = threads
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def idle(self) -> bool:
        return self._busy < self._size

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            self._busy += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._busy -= 1


@functools.cache
def shared_encoder(threads: int) -> SharedExecutor | None:
    """The process's encode executor of ``threads`` threads; ``None`` (inline) below 2."""
    if threads < 2:
        return None
    return SharedExecutor(threads)


def has_idle_thread(executor: Executor | None) -> bool:
    """Whether ``executor`` would start a task now (any plain executor is assumed to)."""
    if executor is None:
        return False
    return executor.idle if isinstance(executor, SharedExecutor) else True


class EncodeJobs:
    """Encodes keyed by what makes their bytes identical; each runs once, inline or on the
    executor."""

    def __init__(self, executor: Executor | None) -> None:
        self._executor = executor
        self._jobs: dict[tuple[object, ...], Future[bytes]] = {}

    def submit(
        self,
        key: tuple[object, ...],
        image: Image.Image,
        encode: Callable[[Image.Image], bytes],
        inline: bool = False,
    ) -> None:
        """Encode ``image`` under ``key`` unless an equal job exists; ``inline`` runs it here
        (the record's last rendition: its thread would only wait otherwise)."""
        if key in self._jobs:
            return
        if self._executor is None or inline:
            done: Future[bytes] = Future()
            done.set_result(encode(image))
            self._jobs[key] = done
        else:
            self._jobs[key] = self._executor.submit(encode, image)

    def result(self, key: tuple[object, ...]) -> bytes:
        return self._jobs[key].result()

    def cancel(self) -> None:
        """Drop what has not started and wait for what has, so no encode outlives the render."""
        for job in self._jobs.values():
            job.cancel()
        wait(self._jobs.values())
