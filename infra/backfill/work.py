"""What flows through a backfill: items from a source, work units of them, and their counts."""

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Final, NamedTuple, Protocol

SQS_BATCH: Final = 10  # SendMessageBatch entries per call (the SQS maximum)
UNIT_SIZE: Final = 100  # keys per sender work unit (= BatchGetItem keys per call)
COUNT_NAMES: Final = (
    "listed", "filtered", "skipped_processed", "missing", "sent", "failed", "retried",
)  # fmt: skip

Position = dict[str, Any]  # where a source resumes; JSON in the state file
Counts = dict[str, int]  # COUNT_NAMES -> keys
Report = Callable[[int, Counts], None]  # a unit's (chunk id, counts), once it is done


class Item(NamedTuple):
    """One key; None where the source does not say (a HeadObject can fill it in)."""

    key: str
    size: int | None = None
    etag: str | None = None  # unquoted
    modified: datetime | None = None

    @property
    def has_metadata(self) -> bool:
        return self.size is not None and self.etag is not None and self.modified is not None


class Unit(NamedTuple):
    """Up to ``UNIT_SIZE`` items of one chunk; the id lets another process report on it."""

    chunk_id: int
    items: list[Item]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with plain-tuple items, for the queue to sender processes: a NamedTuple
        pickles through a Python-level ``__getnewargs__``, 5 times slower (1.2 us a key)."""
        return _unit_from_rows, (self.chunk_id, [tuple(item) for item in self.items])


_item_from_row = partial(tuple.__new__, Item)  # skips ``Item.__new__``'s Python frame


def _unit_from_rows(chunk_id: int, rows: list[tuple[Any, ...]]) -> Unit:
    return Unit(chunk_id, list(map(_item_from_row, rows)))


class Flag(Protocol):
    """``threading.Event`` or ``infra.worker.shared_flag.SharedFlag``."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class WorkQueue(Protocol):
    """``queue.Queue`` or ``multiprocessing.Queue`` of units, ``None`` ending a sender."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None: ...


def zero_counts() -> Counts:
    return dict.fromkeys(COUNT_NAMES, 0)
