"""What a resume needs: the tracker of the committed position, the state file, and the file
of keys that could not be sent."""

import json
import os
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

from core.events import iso_ms
from infra.backfill.options import BackfillError
from infra.backfill.work import Counts, Item, Position, zero_counts

STATE_VERSION: Final = 1


class TrackerSnapshot(NamedTuple):
    position: Position | None  # the committed position
    committed: Counts  # as of that position, over resumed runs too
    live: Counts  # this run's, committed or not
    open_chunks: int  # read but not yet committed


class Chunk:
    """One chunk of the source, from the moment it is read until it is committed."""

    __slots__ = ("counts", "id", "position", "sealed", "units")

    def __init__(self, chunk_id: int, position: Position) -> None:
        self.id = chunk_id  # units carry the id: they may be sent by another process
        self.position = position
        self.units = 0
        self.sealed = False
        self.counts = zero_counts()


class Tracker:
    """Chunks in source order; the committed position is the one after the longest prefix of
    chunks that are sealed (fully read) and whose every unit is done."""

    def __init__(self, position: Position | None, counts: Counts | None = None) -> None:
        self._lock = threading.Lock()
        self._chunks: deque[Chunk] = deque()
        self._open: dict[int, Chunk] = {}
        self._next_id = 0
        self.position = position
        self.committed = {**zero_counts(), **(counts or {})}
        self.live = zero_counts()
        self.version = 0

    def open(self, position: Position) -> Chunk:
        with self._lock:
            chunk = Chunk(self._next_id, position)
            self._next_id += 1
            self._chunks.append(chunk)
            self._open[chunk.id] = chunk
        return chunk

    def add_unit(self, chunk: Chunk) -> None:
        with self._lock:
            chunk.units += 1

    def seal(self, chunk: Chunk, listed: int, filtered: int) -> None:
        with self._lock:
            chunk.sealed = True
            for counts in (chunk.counts, self.live):
                counts["listed"] += listed
                counts["filtered"] += filtered
            self._advance()

    def unit_done(self, chunk_id: int, counts: Counts) -> None:
        with self._lock:
            chunk = self._open[chunk_id]
            chunk.units -= 1
            for name, value in counts.items():
                if value:
                    chunk.counts[name] += value
                    self.live[name] += value
            self._advance()

    def _advance(self) -> None:
        chunks = self._chunks
        while chunks and chunks[0].sealed and chunks[0].units == 0:
            chunk = chunks.popleft()
            del self._open[chunk.id]
            self.position = chunk.position
            for name, value in chunk.counts.items():
                self.committed[name] += value
            self.version += 1

    def snapshot(self) -> TrackerSnapshot:
        with self._lock:
            return TrackerSnapshot(
                self.position, dict(self.committed), dict(self.live), len(self._chunks)
            )


class FailureLog:
    """JSON lines of keys that could not be sent after every retry (appended, never lost)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def write(self, bucket: str, item: Item, error: str, attempts: int) -> None:
        line = json.dumps(
            {
                "bucket": bucket,
                "key": item.key,
                "size": item.size,
                "etag": item.etag,
                "last_modified": iso_ms(item.modified) if item.modified else None,
                "error": error,
                "attempts": attempts,
                "at": iso_ms(datetime.now(UTC)),
            },
            ensure_ascii=False,
        )
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - see close()
            self._file.write(line + "\n")
            self._file.flush()  # survives the process being killed

    def sync(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync it, rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackfillError(f"cannot read state file {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise BackfillError(f"{path} is not a backfill state file (version {STATE_VERSION})")
    return state
