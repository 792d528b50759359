"""Backfill: stream existing keys into the jobs queue as S3-event-shaped messages.

The pipeline is a producer thread and a few sender threads joined by a bounded queue, so memory
stays flat whatever the bucket size:

    source (listing | key file | inventory) ─chunks─▶ cheap filters ─units of ≤100─▶ queue
        ─▶ senders: HeadObject (when metadata is missing) ─▶ metadata filters
                    ─▶ BatchGetItem (--skip-processed) ─▶ SendMessageBatch ×10, retried

With ``--processes N`` the senders are split between this process and N - 1 spawned ones
(``infra.backfill_workers``), which take units from a shared queue and report each unit's
counts back: botocore's per-call CPU holds the GIL, so one process cannot use a second core.

A *chunk* is one unit of resumable position: a ListObjectsV2 page (its position is the page's
``NextContinuationToken``), or 1,000 lines of a key file or of an inventory CSV. The state file
only ever records the position after the longest prefix of chunks whose every key was sent,
filtered or written to the failures file, so a resume never leaves a gap; the keys of chunks
that were in flight are sent again (duplicates are harmless: processing is idempotent).

Messages are built by ``core.events.backfill_message`` (the backfill contract). The hot path
uses ``MessageBuilder``, a template compiled from that same function, and checked against it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from queue import Empty, Full, Queue
from typing import IO, Any, Final, Protocol
from urllib.parse import quote_plus, unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import s3_client
from core.events import backfill_message, iso_ms

DEFAULT_SUFFIXES: Final = (
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".heic", ".heif", ".avif",
)  # fmt: skip
SQS_BATCH: Final = 10  # SendMessageBatch entries per call (the SQS maximum)
UNIT_SIZE: Final = 100  # keys per sender work unit (= BatchGetItem keys per call)
CHUNK_LINES: Final = 1000  # lines of a key file or inventory CSV per resumable chunk
LIST_PAGE_SIZE: Final = 1000
STATE_VERSION: Final = 1
LOCK_TIMEOUT_S: Final = 1.0
MAX_DEFAULT_PROCESSES: Final = 4  # each sender process costs about 50 MB
COUNT_NAMES: Final = (
    "listed", "filtered", "skipped_processed", "missing", "sent", "failed", "retried",
)  # fmt: skip
_ENTRY_IDS: Final = tuple(str(i) for i in range(UNIT_SIZE))
# The jobs queue's tags (the template's and the local stack's): the buckets its consumer may
# read. The source buckets are space-separated (an SQS tag value allows no commas).
RAW_BUCKET_TAG: Final = "imgpipe:raw-bucket"
SOURCE_BUCKETS_TAG: Final = "imgpipe:backfill-source-buckets"
_MISSING_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
# Errors that no retry fixes and that would hit every key: the run stops (state saved).
FATAL_CODES: Final = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied",
        "AccessDeniedException", "InvalidClientTokenId", "UnrecognizedClientException",
        "SignatureDoesNotMatch", "ExpiredToken", "InvalidSecurity", "KMS.AccessDeniedException",
    }
)  # fmt: skip

# key, size, etag (unquoted), last modified; None where the source does not say.
Item = tuple[str, int | None, str | None, datetime | None]
Position = dict[str, Any]
Counts = dict[str, int]


class BackfillError(Exception):
    """A problem with the arguments, the source or the state file (exit code 2)."""


def default_processes() -> int:
    """One sender process per CPU this process may use, at most ``MAX_DEFAULT_PROCESSES``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_DEFAULT_PROCESSES, cpus or 1))


def zero_counts() -> Counts:
    return dict.fromkeys(COUNT_NAMES, 0)


# ----------------------------------------------------------------------------------- parsing


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise BackfillError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise BackfillError(f"no bucket in {url!r}")
    return bucket, prefix


_SIZE_UNITS: Final = {
    "": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
    "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from ``1234``, ``10KB``, ``5MiB`` or ``1.5G`` (binary multiples)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 1024, 10KB, 5MiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_time(text: str) -> datetime:
    """An ISO-8601 date or date-time; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 date or time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_suffixes(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Comma-separated, repeatable suffixes, lower-cased; ``*`` disables the filter."""
    if not values:
        return DEFAULT_SUFFIXES
    suffixes: list[str] = []
    for value in values:
        suffixes.extend(part.strip().lower() for part in value.split(",") if part.strip())
    if "*" in suffixes:
        return None
    return tuple(s if s.startswith(".") else f".{s}" for s in suffixes)


# ----------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """Which keys to send. Half-open time window: ``after <= modified < before``."""

    prefix: str = ""
    suffixes: tuple[str, ...] | None = DEFAULT_SUFFIXES
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    min_size: int | None = None
    max_size: int | None = None

    @property
    def needs_size(self) -> bool:
        return self.min_size is not None or self.max_size is not None

    @property
    def needs_time(self) -> bool:
        return self.modified_after is not None or self.modified_before is not None

    def key_ok(self, key: str) -> bool:
        if self.prefix and not key.startswith(self.prefix):
            return False
        return self.suffixes is None or key.lower().endswith(self.suffixes)

    def metadata_ok(self, size: int | None, modified: datetime | None) -> bool:
        """False only when known metadata is outside the bounds (unknown passes)."""
        if size is not None:
            if self.min_size is not None and size < self.min_size:
                return False
            if self.max_size is not None and size > self.max_size:
                return False
        if modified is not None:
            if self.modified_after is not None and modified < self.modified_after:
                return False
            if self.modified_before is not None and modified >= self.modified_before:
                return False
        return True

    def accepts(self, item: Item) -> bool:
        return self.key_ok(item[0]) and self.metadata_ok(item[1], item[3])


# ----------------------------------------------------------------------------------- messages

_SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_.~/-]*")  # quote_plus(key, safe="/") leaves these
_SAFE_ETAG: Final = re.compile(r"[A-Za-z0-9-]*")


class MessageBuilder:
    """``backfill_message`` for one bucket, compiled to a format string.

    The template is produced by ``core.events.backfill_message`` itself (with sentinel values),
    so the contract's shape lives in one place; ``build`` gives byte-identical bodies (tested),
    and falls back to ``backfill_message`` for anything the template does not cover.
    """

    _KEY = "IMGPIPEsentinelKEY"
    _ETAG = "IMGPIPEsentinelETAG"
    _SIZE = 987654321987654321
    _TIME = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        template = backfill_message(bucket, self._KEY, self._SIZE, self._ETAG, self._TIME)
        slots = {self._KEY: "{0}", str(self._SIZE): "{1}", self._ETAG: "{2}"}
        slots[iso_ms(self._TIME)] = "{3}"
        self._format: str | None = None
        if all(template.count(s) == 1 for s in slots):
            text = template.replace("{", "{{").replace("}", "}}")
            for sentinel, slot in slots.items():
                text = text.replace(sentinel, slot)
            self._format = text
        self._last: tuple[datetime | None, str] = (None, "")

    def event_time(self, modified: datetime) -> str:
        """``iso_ms``, with shortcuts for a repeated time (keys without metadata all get the
        run's start) and for times already in UTC (inventory rows)."""
        last = self._last  # one tuple, swapped atomically: senders share the builder
        if modified is last[0]:
            return last[1]
        if modified.tzinfo is UTC:
            text = modified.isoformat(timespec="milliseconds")[:-6] + "Z"
        else:
            text = iso_ms(modified)
        self._last = (modified, text)
        return text

    def build(self, key: str, size: int, etag: str, modified: datetime) -> str:
        if self._format is None:
            return backfill_message(self.bucket, key, size, etag, modified)
        etag = etag.strip('"')
        if not _SAFE_ETAG.fullmatch(etag):
            return backfill_message(self.bucket, key, size, etag, modified)
        encoded = key if _SAFE_KEY.fullmatch(key) else quote_plus(key, safe="/")
        return self._format.format(encoded, int(size), etag, self.event_time(modified))


# ----------------------------------------------------------------------------------- sources


class Source(Protocol):
    """A stream of resumable chunks: ``(position after the chunk, items)``."""

    kind: str

    def signature(self) -> dict[str, Any]:
        """What identifies this source in a state file (a resume must match it)."""

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]: ...

    def progress(self) -> tuple[int, int | None]:
        """(bytes read, total bytes) for an ETA; total is None when unknown."""

    def provides(self) -> frozenset[str]:
        """Which of ``size``, ``etag`` and ``time`` the items carry (others need HeadObject)."""


class ListingSource:
    """ListObjectsV2 through the boto3 paginator; one chunk per page.

    A page's ``NextContinuationToken`` is recorded only once every key of that page and of
    all earlier pages is accounted for; ``start_after`` (the page's last key) is kept too and
    used when the token is gone (the final page) or no longer accepted.
    """

    kind = "list"

    def __init__(self, s3: Any, bucket: str, prefix: str, page_size: int = LIST_PAGE_SIZE):
        self.s3, self.bucket, self.prefix, self.page_size = s3, bucket, prefix, page_size

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "bucket": self.bucket, "prefix": self.prefix}

    def provides(self) -> frozenset[str]:
        return frozenset({"size", "etag", "time"})

    def progress(self) -> tuple[int, int | None]:
        return 0, None

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        position = position or {}
        token, start_after = position.get("continuation_token"), position.get("start_after")
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix,
            "PaginationConfig": {"PageSize": self.page_size},
        }
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        last_key = start_after
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(**kwargs):
                items: list[Item] = [
                    (o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"'), o["LastModified"])
                    for o in page.get("Contents", ())
                ]
                if items:
                    last_key = items[-1][0]
                yield (
                    {
                        "continuation_token": page.get("NextContinuationToken"),
                        "start_after": last_key,
                    },
                    items,
                )
        except Exception as exc:
            if token and start_after and _error_code(exc) == "InvalidArgument":
                # The saved token was refused (e.g. too old): resume from the last key instead.
                yield from self.chunks({"start_after": start_after})
                return
            raise


class _CountingReader(io.RawIOBase):
    """Counts the bytes read through it (for progress and ETA)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class FileSource:
    """One key per line (UTF-8, not URL-encoded) from a file or ``-`` (stdin).

    Position: the number of lines consumed; a resume skips that many lines (so stdin resumes
    too, when the same list is piped in again). Blank lines are ignored.
    """

    kind = "file"

    def __init__(self, path: str, stdin: IO[bytes] | None = None) -> None:
        self.path = path
        self._stdin = stdin
        self._read = 0
        self._total: int | None = None
        if path != "-":
            try:
                self._total = os.stat(path).st_size
            except OSError as exc:
                raise BackfillError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path}

    def provides(self) -> frozenset[str]:
        return frozenset()

    def progress(self) -> tuple[int, int | None]:
        return self._read, self._total

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        skip = int((position or {}).get("line", 0))
        if self.path == "-":
            stream: IO[bytes] = self._stdin or sys.stdin.buffer
            yield from self._lines(stream, skip)
        else:
            with open(self.path, "rb") as stream:
                yield from self._lines(stream, skip)

    def _lines(self, stream: IO[bytes], skip: int) -> Iterator[tuple[Position, list[Item]]]:
        line_no = 0
        items: list[Item] = []
        read = 0
        for raw in stream:
            line_no += 1
            read += len(raw)
            if line_no <= skip:
                continue
            key = raw.decode("utf-8").rstrip("\r\n")
            if key:
                items.append((key, None, None, None))
            if line_no % CHUNK_LINES == 0:
                self._read = read
                yield {"line": line_no}, items
                items = []
        self._read = read
        if items or line_no > skip:
            yield {"line": line_no}, items


@dataclass(frozen=True)
class InventoryFile:
    key: str
    size: int | None


@dataclass(frozen=True)
class Manifest:
    location: str
    source_bucket: str
    destination_bucket: str
    columns: tuple[str, ...]
    files: tuple[InventoryFile, ...]


def _inventory_location(location: str) -> tuple[str | None, str]:
    if location.startswith("s3://"):
        return parse_s3_url(location)
    return None, location


def load_manifest(location: str, s3: Any | None) -> Manifest:
    """Read an S3 Inventory ``manifest.json`` from ``s3://...`` or a local path."""
    bucket, path = _inventory_location(location)
    try:
        if bucket is not None:
            if s3 is None:
                raise BackfillError("an S3 client is needed for an s3:// manifest")
            body = s3.get_object(Bucket=bucket, Key=path)["Body"].read()
        else:
            body = Path(path).read_bytes()
        data = json.loads(body)
    except BackfillError:
        raise
    except (OSError, ValueError) as exc:
        raise BackfillError(f"cannot read inventory manifest {location}: {exc}") from exc
    except Exception as exc:  # botocore errors
        raise BackfillError(f"cannot read inventory manifest {location}: {exc}") from exc
    if not isinstance(data, dict):
        raise BackfillError(f"{location} is not an inventory manifest")
    file_format = str(data.get("fileFormat", "CSV")).upper()
    if file_format != "CSV":
        raise BackfillError(f"inventory format {file_format} is not supported (use CSV)")
    schema = data.get("fileSchema")
    if not isinstance(schema, str) or not schema.strip():
        raise BackfillError(f"{location} has no fileSchema")
    columns = tuple(c.strip() for c in schema.split(","))
    if "Key" not in columns:
        raise BackfillError(f"{location}: fileSchema has no Key column")
    files = tuple(
        InventoryFile(str(f["key"]), int(f["size"]) if f.get("size") is not None else None)
        for f in data.get("files", [])
    )
    destination = str(data.get("destinationBucket", ""))
    return Manifest(
        location=location,
        source_bucket=str(data.get("sourceBucket", "")),
        destination_bucket=destination.rsplit(":", 1)[-1] if destination else "",
        columns=columns,
        files=files,
    )


def _parse_inventory_time(text: str) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class InventorySource:
    """The CSV(.gz) files of an S3 Inventory manifest, in manifest order.

    Columns come from the manifest's ``fileSchema``; keys are URL-encoded in inventory CSVs.
    Rows of other buckets, delete markers and non-current versions are not listed.
    Files in S3 are downloaded to a temporary file before reading (a stream held open for
    hours at a low ``--max-rate`` would time out). Local files are looked up as the file key,
    or its trailing part (``data/x.csv.gz``, ``x.csv.gz``), under the manifest's folder or one of
    its three parents, which covers ``aws s3 sync`` of the inventory prefix.
    Position: ``{"file": index, "key": file key, "line": rows consumed}``.
    """

    kind = "inventory"

    def __init__(self, manifest: Manifest, s3: Any | None, bucket: str | None = None) -> None:
        self.manifest, self.s3 = manifest, s3
        self.bucket = bucket or manifest.source_bucket
        if not self.bucket:
            raise BackfillError("the manifest names no sourceBucket; pass s3://BUCKET")
        self._done_bytes = 0
        self._reader: _CountingReader | None = None
        sizes = [f.size for f in manifest.files]
        self._total = sum(s for s in sizes if s is not None) if None not in sizes else None
        cols = manifest.columns
        self._col = {name: cols.index(name) for name in cols}

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "manifest": self.manifest.location}

    def provides(self) -> frozenset[str]:
        columns = {"Size": "size", "ETag": "etag", "LastModifiedDate": "time"}
        return frozenset(name for column, name in columns.items() if column in self._col)

    def progress(self) -> tuple[int, int | None]:
        return self._done_bytes + (self._reader.count if self._reader else 0), self._total

    def _open(self, entry: InventoryFile) -> IO[bytes]:
        bucket, path = _inventory_location(self.manifest.location)
        if bucket is not None:
            assert self.s3 is not None
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned; the caller closes it
            source_bucket = self.manifest.destination_bucket or bucket
            self.s3.download_fileobj(source_bucket, entry.key, spool)
            spool.seek(0)
            return spool
        base = Path(path).resolve().parent
        parts = PurePosixPath(entry.key).parts
        for folder in (base, *list(base.parents)[:3]):
            for start in range(len(parts)):
                candidate = folder.joinpath(*parts[start:])
                if candidate.is_file():
                    return open(candidate, "rb")
        raise BackfillError(f"inventory file {entry.key} not found near {path}")

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        position = position or {}
        start_file, skip = int(position.get("file", 0)), int(position.get("line", 0))
        files = self.manifest.files
        if start_file < len(files) and position.get("key") not in (None, files[start_file].key):
            raise BackfillError("the state file's inventory position does not match the manifest")
        for index, entry in enumerate(files):
            if index < start_file:
                self._done_bytes += entry.size or 0
                continue
            yield from self._file_chunks(index, entry, skip if index == start_file else 0)
            self._done_bytes += entry.size or 0
            self._reader = None

    def _file_chunks(
        self, index: int, entry: InventoryFile, skip: int
    ) -> Iterator[tuple[Position, list[Item]]]:
        col = self._col
        key_i, bucket_i = col["Key"], col.get("Bucket")
        size_i, etag_i = col.get("Size"), col.get("ETag")
        time_i, latest_i, marker_i = (
            col.get("LastModifiedDate"),
            col.get("IsLatest"),
            col.get("IsDeleteMarker"),
        )
        bucket = self.bucket
        with self._open(entry) as raw:
            self._reader = reader = _CountingReader(raw)
            buffered = io.BufferedReader(reader, 1 << 16)
            head = buffered.peek(2)[:2]
            binary: IO[bytes] = (
                gzip.GzipFile(fileobj=buffered) if head == b"\x1f\x8b" else buffered  # type: ignore[assignment]
            )
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            line_no = 0
            items: list[Item] = []
            for row in csv.reader(text):
                line_no += 1
                if line_no <= skip:
                    continue
                if (
                    (bucket_i is not None and row[bucket_i] != bucket)
                    or (marker_i is not None and row[marker_i].lower() == "true")
                    or (latest_i is not None and row[latest_i].lower() == "false")
                ):
                    pass
                else:
                    size_text = row[size_i] if size_i is not None else ""
                    etag_text = row[etag_i] if etag_i is not None else ""
                    items.append(
                        (
                            unquote_plus(row[key_i]),
                            int(size_text) if size_text else None,
                            etag_text.strip('"') or None,
                            _parse_inventory_time(row[time_i]) if time_i is not None else None,
                        )
                    )
                if line_no % CHUNK_LINES == 0:
                    yield {"file": index, "key": entry.key, "line": line_no}, items
                    items = []
            yield {"file": index + 1, "key": None, "line": 0}, items


# ----------------------------------------------------------------------------------- plumbing


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


class _Chunk:
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
        self._chunks: deque[_Chunk] = deque()
        self._open: dict[int, _Chunk] = {}
        self._next_id = 0
        self.position = position
        self.committed = {**zero_counts(), **(counts or {})}
        self.live = zero_counts()
        self.version = 0

    def open(self, position: Position) -> _Chunk:
        with self._lock:
            chunk = _Chunk(self._next_id, position)
            self._next_id += 1
            self._chunks.append(chunk)
            self._open[chunk.id] = chunk
        return chunk

    def add_unit(self, chunk: _Chunk) -> None:
        with self._lock:
            chunk.units += 1

    def seal(self, chunk: _Chunk, listed: int, filtered: int) -> None:
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

    def snapshot(self) -> tuple[Position | None, Counts, Counts, int]:
        with self._lock:
            return self.position, dict(self.committed), dict(self.live), len(self._chunks)


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
                "key": item[0],
                "size": item[1],
                "etag": item[2],
                "last_modified": iso_ms(item[3]) if item[3] else None,
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


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


# ----------------------------------------------------------------------------------- the run


@dataclass
class Options:
    bucket: str
    queue_url: str
    filters: Filters = field(default_factory=Filters)
    head: bool = True  # HeadObject keys whose size/ETag/time the source does not give
    skip_processed: bool = False
    table: str | None = None
    concurrency: int = 8  # sender threads in all
    head_concurrency: int = 32
    processes: int = 1  # sender processes, this one included (the threads are split evenly)
    max_rate: float | None = None
    retries: int = 6
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    state_path: Path | None = None
    state_interval: float = 2.0
    failures_path: Path = Path("imgpipe-backfill-failures.jsonl")
    dry_run: bool = False
    sample_size: int = 10
    queue_units: int | None = None  # bounded queue length (default: 2 per sender)
    page_size: int = LIST_PAGE_SIZE  # ListObjectsV2 MaxKeys (one resumable chunk per page)

    def share(self, total: int) -> int:
        """One process's share of ``total`` threads."""
        return max(1, -(-total // max(1, self.processes)))


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any | None = None
    on_close: Callable[[], None] | None = None  # e.g. a benchmark's report

    def close(self) -> None:
        for client in (self.s3, self.sqs, self.dynamodb):
            if client is not None:
                client.close()
        if self.on_close is not None:
            self.on_close()


ClientFactory = Callable[["Options"], Clients]


def sqs_user_agent() -> str:
    """A fixed User-Agent for the SQS client. By default botocore rebuilds and sanitises its
    full User-Agent twice per call, about a fifth of a SendMessageBatch's client CPU here."""
    import botocore

    return f"imgpipe-backfill Botocore/{botocore.__version__}"


def make_clients(options: Options, session: Any | None = None) -> Clients:
    """Pooled clients sized for the senders. The SQS client is tuned for its hot path: no
    client-side parameter validation (the entries are built here) and a fixed User-Agent."""
    import boto3
    from botocore.config import Config

    boto: Any = session or boto3.session.Session()
    senders = options.share(options.concurrency)
    pool = senders + options.share(options.head_concurrency) + 4
    s3 = s3_client(pool, session=boto)
    sqs = boto.client(
        "sqs",
        config=Config(
            max_pool_connections=senders + 4,
            retries={"mode": "standard"},
            parameter_validation=False,
            user_agent=sqs_user_agent(),
        ),
    )
    dynamodb = None
    if options.skip_processed:
        dynamodb = boto.client("dynamodb", config=Config(max_pool_connections=senders + 4))
    return Clients(s3=s3, sqs=sqs, dynamodb=dynamodb)


@dataclass
class Snapshot:
    """Live figures for a progress display."""

    counts: Counts
    elapsed_s: float
    rate: float  # messages sent per second, recent
    bytes_read: int
    bytes_total: int | None
    eta_s: float | None
    stopping: bool


@dataclass
class Summary:
    source: dict[str, Any]
    bucket: str
    queue_url: str
    dry_run: bool
    counts: Counts  # cumulative over resumed runs, as of the committed position
    this_run: Counts
    elapsed_s: float
    rate_per_s: float
    complete: bool
    interrupted: bool
    resumed: bool
    position: Position | None
    state_file: str | None
    failures_file: str | None
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if not self.dry_run:
            data.pop("sample")
        return data


class Flag(Protocol):
    """``threading.Event`` or ``multiprocessing.Event``."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class WorkQueue(Protocol):
    """``queue.Queue`` or ``multiprocessing.Queue`` of ``(chunk id, items)`` units."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None: ...


Report = Callable[[int, Counts], None]


class Sender:
    """Sends work units: HeadObject where the source lacks metadata, the metadata filters,
    BatchGetItem (--skip-processed), then SendMessageBatch with retries. One per process,
    shared by that process's sender threads."""

    def __init__(
        self,
        options: Options,
        clients: Clients,
        stop: Flag,
        abort: Flag,
        limit: TokenBucket | None,
        *,
        alive: Callable[[], bool] = lambda: True,
        now: datetime | None = None,
    ) -> None:
        self.options = options
        self.clients = clients
        self.builder = MessageBuilder(options.bucket)
        self.bucket_limit = limit
        self.failures = FailureLog(options.failures_path)
        self.sample: list[dict[str, Any]] = []
        self._sample_lock = threading.Lock()
        self._stop, self._abort, self._alive = stop, abort, alive
        self.now = now or datetime.now(UTC)  # the event time of keys whose source gives none

    def loop(self, work: WorkQueue, heads: ThreadPoolExecutor, report: Report) -> None:
        """Send units from ``work`` until its end marker (None), a stop, or ``alive`` fails."""
        while not self._stop.is_set():
            try:
                unit = work.get(timeout=0.2)
            except Empty:
                if not self._alive():
                    return
                continue
            if unit is None:
                return
            chunk_id, items = unit
            counts = self.process(items, heads)
            if counts is not None:
                report(chunk_id, counts)

    def process(self, items: list[Item], heads: ThreadPoolExecutor) -> Counts | None:
        """Send one unit; the counts, or None when a stop abandoned it part-way."""
        opts = self.options
        counts = zero_counts()
        if opts.head and any(i[1] is None or i[2] is None or i[3] is None for i in items):
            resolved = self._head_all(items, heads, counts)
            if resolved is None:
                return None
            before = len(resolved)
            items = [i for i in resolved if opts.filters.metadata_ok(i[1], i[3])]
            counts["filtered"] += before - len(items)
        if opts.skip_processed and items:
            before = len(items)
            items = self._drop_processed(items)
            counts["skipped_processed"] += before - len(items)
        if not items:
            return counts
        if opts.dry_run:
            self.keep_sample(items)
            counts["sent"] += len(items)
            return counts
        build, now = self.builder.build, self.now
        entries = [
            (
                _ENTRY_IDS[n],
                build(key, size or 0, etag or "", modified or now),
                (key, size, etag, modified),
            )
            for n, (key, size, etag, modified) in enumerate(items)
        ]
        return counts if self._send(entries, counts) else None

    def _send(self, entries: list[tuple[str, str, Item]], counts: Counts) -> bool:
        opts = self.options
        send = self.clients.sqs.send_message_batch
        queue_url = opts.queue_url
        limit = self.bucket_limit
        pending = entries
        attempt = 0
        while pending:
            failed: list[tuple[tuple[str, str, Item], str]] = []
            for start in range(0, len(pending), SQS_BATCH):
                if self._abort.is_set():
                    return False
                batch = pending[start : start + SQS_BATCH]
                if limit is not None and not limit.acquire(len(batch), self._stop):
                    return False
                try:
                    response = send(
                        QueueUrl=queue_url,
                        Entries=[{"Id": e[0], "MessageBody": e[1]} for e in batch],
                    )
                except Exception as exc:
                    code = _error_code(exc)
                    if code in FATAL_CODES:
                        raise  # no key can be sent: stop the run rather than fail every key
                    failed.extend((e, code) for e in batch)
                    continue
                ok = response.get("Successful") or ()
                bad = response.get("Failed") or ()
                if not bad and len(ok) == len(batch):
                    counts["sent"] += len(batch)
                    continue
                succeeded = {s["Id"] for s in ok}
                codes = {f["Id"]: str(f.get("Code", "Failed")) for f in bad}
                for entry in batch:
                    if entry[0] in succeeded and entry[0] not in codes:
                        counts["sent"] += 1
                    else:  # in Failed, or in neither list: never assume it was sent
                        failed.append((entry, codes.get(entry[0], "NotAcknowledged")))
            if not failed:
                return True
            attempt += 1
            if attempt > opts.retries:
                for (_, _, item), code in failed:
                    self.failures.write(opts.bucket, item, f"SendMessageBatch: {code}", attempt)
                counts["failed"] += len(failed)
                return True
            counts["retried"] += len(failed)
            if self._stop.wait(self._backoff(attempt)):
                return False
            pending = [entry for entry, _ in failed]
        return True

    def _backoff(self, attempt: int) -> float:
        """Full jitter exponential backoff."""
        opts = self.options
        return random.uniform(0, min(opts.backoff_cap, opts.backoff_base * 2 ** (attempt - 1)))

    def _head_all(
        self, items: list[Item], heads: ThreadPoolExecutor, counts: Counts
    ) -> list[Item] | None:
        results = list(heads.map(self._head, items))
        resolved: list[Item] = []
        for item, (found, error) in zip(items, results, strict=True):
            if found is not None:
                resolved.append(found)
            elif error == "missing":
                counts["missing"] += 1
            elif error == "stopped":
                return None
            else:
                self.failures.write(self.options.bucket, item, error, self.options.retries + 1)
                counts["failed"] += 1
        return resolved

    def _head(self, item: Item) -> tuple[Item | None, str]:
        if item[1] is not None and item[2] is not None and item[3] is not None:
            return item, ""
        error = ""
        for attempt in range(1, self.options.retries + 2):
            if self._stop.is_set():
                return None, "stopped"
            try:
                head = self.clients.s3.head_object(Bucket=self.options.bucket, Key=item[0])
                return (
                    item[0],
                    int(head["ContentLength"]),
                    str(head.get("ETag", "")).strip('"'),
                    head["LastModified"],
                ), ""
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
                code = _error_code(exc)
                if code in _MISSING_CODES:
                    return None, "missing"
                error = f"HeadObject: {code}"
                if code in ("403", "AccessDenied"):
                    break
            if self._stop.wait(self._backoff(attempt)):
                return None, "stopped"
        return None, error

    def _drop_processed(self, items: list[Item]) -> list[Item]:
        """Items not already PROCESSED with the same ETag. If the table cannot be read after
        retries, everything is sent (a duplicate is harmless; the handler skips it)."""
        table = self.options.table
        dynamodb = self.clients.dynamodb
        assert table is not None and dynamodb is not None
        bucket = self.options.bucket
        ids = list(dict.fromkeys(f"{bucket}/{item[0]}" for item in items))
        done: dict[str, str] = {}
        request: dict[str, Any] | None = {
            table: {
                "Keys": [{"image_id": {"S": image_id}} for image_id in ids],
                "ProjectionExpression": "image_id, #s, etag",
                "ExpressionAttributeNames": {"#s": "status"},
            }
        }
        attempt = 0
        while request:
            try:
                response = dynamodb.batch_get_item(RequestItems=request)
            except Exception:  # noqa: BLE001 - retried like unprocessed keys, then sent anyway
                response = {"UnprocessedKeys": request}
            for row in response.get("Responses", {}).get(table, []):
                if row.get("status", {}).get("S") == "PROCESSED":
                    done[row["image_id"]["S"]] = row.get("etag", {}).get("S", "")
            request = response.get("UnprocessedKeys") or None
            if request:
                attempt += 1
                if attempt > self.options.retries or self._stop.wait(self._backoff(attempt)):
                    break
        return [
            item
            for item in items
            if not item[2] or done.get(f"{bucket}/{item[0]}") != item[2].strip('"')
        ]

    def keep_sample(self, items: list[Item]) -> None:
        with self._sample_lock:
            for key, size, etag, modified in items:
                if len(self.sample) >= self.options.sample_size:
                    return
                self.sample.append(
                    {
                        "key": key,
                        "size": size,
                        "etag": etag,
                        "last_modified": iso_ms(modified) if modified else None,
                    }
                )


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

    def run(self, tick: Callable[[Snapshot], None] | None = None, tick_s: float = 0.2) -> Summary:
        if self.state is not None and self.state.get("complete"):
            return self._summary(complete=True, interrupted=False)
        opts = self.options
        local_senders = opts.share(opts.concurrency)
        all_senders = local_senders * opts.processes
        queue_size = opts.queue_units or 2 * all_senders
        workers = None
        work: WorkQueue
        if opts.processes > 1:
            from infra.backfill_workers import SenderProcesses

            assert self.client_factory is not None
            workers = SenderProcesses(
                self, self.client_factory, opts.processes - 1, local_senders, queue_size
            )
            work = workers.work
        else:
            work = Queue(maxsize=queue_size)
        heads = ThreadPoolExecutor(
            opts.share(opts.head_concurrency), thread_name_prefix="backfill-head"
        )
        producer = threading.Thread(
            target=self._guard,
            args=(self._produce, work, all_senders),
            name="backfill-list",
            daemon=True,
        )
        senders = [
            threading.Thread(
                target=self._guard,
                args=(self.sender.loop, work, heads, self.tracker.unit_done),
                name=f"backfill-send-{i}",
                daemon=True,
            )
            for i in range(local_senders)
        ]
        threads = [producer, *senders, *(workers.threads if workers else ())]
        for thread in threads:
            thread.start()
        last_save = time.monotonic()
        saved_version = -1
        try:
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
                if time.monotonic() - last_save >= opts.state_interval:
                    saved_version = self._save(saved_version)
                    last_save = time.monotonic()
        finally:
            heads.shutdown(wait=not self._abort.is_set(), cancel_futures=True)
            if workers is not None:
                workers.close(abort=self._abort.is_set())
        complete = not self._stop.is_set() and not self._errors
        if complete:
            _, _, _, open_chunks = self.tracker.snapshot()
            complete = open_chunks == 0
        self._save(-1, complete=complete)
        self.sender.failures.close()
        if tick is not None:
            tick(self.snapshot())
        return self._summary(complete=complete, interrupted=self._interrupted)

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - a bug or a fatal source error: stop all, say so
            self.fail(f"{threading.current_thread().name}: {describe_error(exc)}")

    # --- producer ------------------------------------------------------------------------------

    def _produce(self, work: WorkQueue, senders: int) -> None:
        filters = self.options.filters
        accepts = filters.accepts
        tracker = self.tracker
        try:
            for position, items in self.source.chunks(tracker.position):
                if self._stop.is_set():
                    return
                chunk = tracker.open(position)
                passed = [item for item in items if accepts(item)]
                for start in range(0, len(passed), UNIT_SIZE):
                    tracker.add_unit(chunk)
                    if not self._put(work, (chunk.id, passed[start : start + UNIT_SIZE])):
                        return  # stopped mid-chunk: it stays open, so it is not committed
                tracker.seal(chunk, len(items), len(items) - len(passed))
        finally:
            if not self._stop.is_set():
                for _ in range(senders):
                    self._put(work, None)  # the end marker, one per sender

    def _put(self, work: WorkQueue, unit: Any) -> bool:
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
        position, committed, _, _ = self.tracker.snapshot()
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
                "position": position,
                "counts": committed,
                "complete": complete,
                "updated_at": iso_ms(datetime.now(UTC)),
            },
        )
        return version

    def _note_rate(self) -> None:
        self._rate_window.append((time.monotonic(), self.tracker.live["sent"]))

    def snapshot(self) -> Snapshot:
        _, _, live, _ = self.tracker.snapshot()
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
        position, committed, live, _ = self.tracker.snapshot()
        elapsed = time.monotonic() - self._started
        return Summary(
            source=self.source.signature(),
            bucket=self.options.bucket,
            queue_url=self.options.queue_url,
            dry_run=self.options.dry_run,
            counts=committed,
            this_run=live,
            elapsed_s=round(elapsed, 3),
            rate_per_s=round(live["sent"] / elapsed, 1) if elapsed > 0 else 0.0,
            complete=complete,
            interrupted=interrupted,
            resumed=self.state is not None,
            position=position,
            state_file=str(self.options.state_path) if self.options.state_path else None,
            failures_file=(
                str(self.options.failures_path) if committed["failed"] or live["failed"] else None
            ),
            error="; ".join(self._errors) or None,
            sample=list(self.sender.sample),
        )


def describe_error(exc: BaseException) -> str:
    code = _error_code(exc)
    text = str(exc) or type(exc).__name__
    return text if code == type(exc).__name__ else f"{code}: {text}"


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


def check_options(options: Options, source: Source) -> None:
    """Refuse combinations that could not do what they say."""
    if options.concurrency < 1 or options.head_concurrency < 1:
        raise BackfillError("--concurrency must be at least 1")
    if options.processes < 1:
        raise BackfillError("--processes must be at least 1")
    if options.skip_processed and not options.table:
        raise BackfillError("--skip-processed needs --table (or IMGPIPE_TABLE)")
    if not options.queue_url and not options.dry_run:
        raise BackfillError("--queue-url (or IMGPIPE_QUEUE_URL) is required")
    if not options.head:
        provided = source.provides()
        needs = [
            flag
            for flag, field_name, used in (
                ("--min-size/--max-size", "size", options.filters.needs_size),
                ("--modified-after/--modified-before", "time", options.filters.needs_time),
                ("--skip-processed", "etag", options.skip_processed),
            )
            if used and field_name not in provided
        ]
        if needs:
            raise BackfillError(
                f"{', '.join(needs)} need object metadata this source lacks: drop --no-head"
            )


def preflight(options: Options, clients: Clients) -> list[str]:
    """Fail fast, before listing anything, when the queue, the bucket or the table cannot be
    used: such errors would otherwise be retried or recorded for every key. Returns warnings
    about checks that had to be skipped."""
    if not options.dry_run:
        try:
            clients.sqs.get_queue_attributes(
                QueueUrl=options.queue_url, AttributeNames=["QueueArn"]
            )
        except Exception as exc:
            raise BackfillError(
                f"cannot use queue {options.queue_url}: {describe_error(exc)}"
            ) from exc
    if options.skip_processed and clients.dynamodb is not None and options.table:
        probe = {options.table: {"Keys": [{"image_id": {"S": "imgpipe-backfill/preflight"}}]}}
        try:
            clients.dynamodb.batch_get_item(RequestItems=probe)
        except Exception as exc:
            raise BackfillError(
                f"cannot read table {options.table}: {describe_error(exc)}"
            ) from exc
    warning = check_readable(options, clients)
    return [warning] if warning else []


def check_readable(options: Options, clients: Clients) -> str | None:
    """Refuse a bucket the process function may not read (every image of it would be recorded
    FAILED access_denied), as the queue's tags tell; a warning when they cannot tell."""
    skipped = f"the check that the process function may read s3://{options.bucket} was skipped"
    if not options.queue_url:
        return f"no --queue-url to read the stack's tags from: {skipped}"
    try:
        tags = clients.sqs.list_queue_tags(QueueUrl=options.queue_url).get("Tags") or {}
    except (ClientError, BotoCoreError) as exc:
        return f"cannot read the tags of {options.queue_url} ({describe_error(exc)}): {skipped}"
    raw_bucket = tags.get(RAW_BUCKET_TAG)
    if not raw_bucket:
        return f"{options.queue_url} has no {RAW_BUCKET_TAG} tag: {skipped}"
    readable = [raw_bucket, *tags.get(SOURCE_BUCKETS_TAG, "").split()]
    if options.bucket not in readable:
        raise BackfillError(
            f"the process function may not read s3://{options.bucket}: add it to the stack "
            f"parameter BackfillSourceBuckets (locally: imgpipe up --source-bucket "
            f"{options.bucket}); otherwise every image would be recorded FAILED access_denied. "
            f"The queue's tags allow: {', '.join(readable)}."
        )
    return None
