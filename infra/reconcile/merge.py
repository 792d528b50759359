"""The merge-join of two streams sorted by key."""

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

L = TypeVar("L", bound=tuple[Any, ...])
R = TypeVar("R", bound=tuple[Any, ...])
_END: Any = object()


def merge_join(left: Iterable[L], right: Iterable[R]) -> Iterator[tuple[L | None, R | None]]:
    """Pairs of rows with equal keys (first elements), ``(row, None)`` for a key only on the
    left and ``(None, row)`` for one only on the right. Both inputs must be sorted by key; the
    right one must have one row per key (a listing), the left may repeat keys."""
    lefts, rights = iter(left), iter(right)
    a, b = next(lefts, _END), next(rights, _END)
    while a is not _END or b is not _END:
        if b is _END or (a is not _END and a[0] < b[0]):
            yield a, None
            a = next(lefts, _END)
        elif a is _END or b[0] < a[0]:
            yield None, b
            b = next(rights, _END)
        else:
            yield a, b
            a = next(lefts, _END)
            while a is not _END and a[0] == b[0]:
                yield a, b
                a = next(lefts, _END)
            b = next(rights, _END)
