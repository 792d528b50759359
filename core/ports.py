"""The two interfaces the pipeline works over, and the deadline every call through them keeps;
``core.aws`` implements them with boto3."""

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from core.catalog import ImageRecord
from core.errors import Transient


class DeadlineExceeded(Transient):
    """A record ran short of time: it stops before its next stage or call and is retried,
    rather than outliving the invocation (which would retry the whole batch)."""


class Deadline:
    """The moment a record must be finished by, on a monotonic clock.

    Checked before every stage; the adapters also bound each AWS call's timeouts and retry
    attempts by what is left. Immutable, so one instance may be shared by threads.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds

    @classmethod
    def unbounded(cls) -> "Deadline":
        return cls(math.inf)

    def remaining_s(self) -> float:
        return self._at - self._clock()

    def check(self, stage: str) -> None:
        """Raise DeadlineExceeded when no time is left to start ``stage``."""
        remaining = self.remaining_s()
        if remaining <= 0:
            raise DeadlineExceeded(f"{stage} not started: the record's deadline passed")


class Storage(Protocol):
    def get(
        self, bucket: str, key: str, etag: str, max_bytes: int, deadline: Deadline | None = None
    ) -> bytes:
        """The object's bytes if its ETag still matches; Skipped(stale|source_missing) if not,
        Rejected(access_denied) when this function may not read it."""

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        deadline: Deadline | None = None,
    ) -> None: ...

    def delete(self, bucket: str, keys: Iterable[str], deadline: Deadline | None = None) -> None:
        """Delete ``keys`` (a missing key is no error)."""


@dataclass(frozen=True)
class Replaced:
    """A write that won: ``previous`` is the item it replaced, read atomically with the write
    (None when there was none), so its outputs can be cleaned up without a race."""

    previous: ImageRecord | None


class Catalog(Protocol):
    def get(self, image_id: str, deadline: Deadline | None = None) -> ImageRecord | None: ...

    def put(self, record: ImageRecord, deadline: Deadline | None = None) -> Replaced | None:
        """Write ``record`` unless a newer event already wrote one (then None)."""
