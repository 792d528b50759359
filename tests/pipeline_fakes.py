"""In-memory fakes of the pipeline's two ports, kept as the boto3 adapters behave, and a
``World`` that runs ``process_source`` over them (shared by the pipeline's unit tests)."""

import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from core.catalog import ImageRecord
from core.errors import Rejected, Skipped
from core.events import SourceObject, iso_ms
from core.imaging import parse_renditions
from core.pipeline import Outcome, process_source
from core.ports import Deadline, Replaced
from core.settings import Settings

RAW, OUTPUT = "raw-bucket", "output-bucket"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    raw_bucket=RAW,
    output_bucket=OUTPUT,
    table="images",
    queue_url="",
    renditions=parse_renditions("default"),
    max_bytes=1_000_000,
    max_pixels=1_000_000,
    workers=1,
    cdn_domain="",
)


def jpeg(width: int = 96, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def wide(width: int = 2000, height: int = 400) -> bytes:
    """Wider than 1080p (within the 1 MP limit): every default rendition has its own size, so
    none shares another's stored object."""
    return jpeg(width, height)


@dataclass
class StoredObject:
    data: bytes
    etag: str


@dataclass
class FakeStorage:
    """The Storage port as S3Storage keeps it: conditional reads, recorded writes."""

    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)  # buckets this function may not read
    failure: Exception | None = None  # raised by every call, like a throttled S3
    gets: list[str] = field(default_factory=list)
    puts: dict[str, tuple[bytes, str, Mapping[str, str]]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    delete_failure: Exception | None = None  # raised by deletes only
    deadlines: list[Deadline | None] = field(default_factory=list)  # what each call was given
    call_s: float = 0.0  # how far each call moves ``clock``, like a slow S3
    clock: list[float] = field(default_factory=lambda: [0.0])
    put_wait_s: float = 0.0  # how long each put really takes, to see puts overlap
    most_puts_at_once: int = 0
    _puts_now: list[int] = field(default_factory=lambda: [0])
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self, bucket: str, key: str, etag: str, max_bytes: int, deadline: Deadline | None = None
    ) -> bytes:
        self.gets.append(key)
        self.deadlines.append(deadline)
        self.clock[0] += self.call_s
        if self.failure:
            raise self.failure
        if bucket in self.unreadable:
            raise Rejected("access_denied", f"may not read s3://{bucket}/{key}")
        stored = self.objects.get((bucket, key))
        if stored is None:
            raise Skipped("source_missing", f"s3://{bucket}/{key}")
        if etag and stored.etag != etag:
            raise Skipped("stale", f"s3://{bucket}/{key} no longer has ETag {etag}")
        if len(stored.data) > max_bytes:
            raise Rejected("too_large", f"object is {len(stored.data)} bytes")
        return stored.data

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        deadline: Deadline | None = None,
    ) -> None:
        self.deadlines.append(deadline)
        self.clock[0] += self.call_s
        if self.failure:
            raise self.failure
        assert bucket == OUTPUT
        with self._lock:
            self._puts_now[0] += 1
            self.most_puts_at_once = max(self.most_puts_at_once, self._puts_now[0])
        time.sleep(self.put_wait_s)
        with self._lock:
            self._puts_now[0] -= 1
        self.puts[key] = (data, content_type, dict(metadata))

    def delete(self, bucket: str, keys: Iterable[str], deadline: Deadline | None = None) -> None:
        self.deadlines.append(deadline)
        if self.failure or self.delete_failure:
            raise self.failure or self.delete_failure  # type: ignore[misc]
        assert bucket == OUTPUT
        for key in sorted(keys):
            self.deleted.append(key)
            self.puts.pop(key, None)


@dataclass
class FakeCatalog:
    """The Catalog port as DynamoCatalog keeps it: items in their table form, and writes that
    an older event (by ``event_order``) never wins."""

    items: dict[str, dict[str, object]] = field(default_factory=dict)
    failure: Exception | None = None
    deadlines: list[Deadline | None] = field(default_factory=list)
    before_put: Callable[[], None] | None = None  # another worker's write, just before ours

    def get(self, image_id: str, deadline: Deadline | None = None) -> ImageRecord | None:
        self.deadlines.append(deadline)
        if self.failure:
            raise self.failure
        item = self.items.get(image_id)
        return ImageRecord.from_item(item) if item else None

    def put(self, record: ImageRecord, deadline: Deadline | None = None) -> Replaced | None:
        self.deadlines.append(deadline)
        if self.failure:
            raise self.failure
        if self.before_put is not None:
            self.before_put()
        existing = self.get(record.image_id, deadline)
        if existing and existing.event_order > record.event_order:
            return None
        self.items[record.image_id] = record.to_item()
        return Replaced(existing)


@dataclass
class World:
    storage: FakeStorage
    catalog: FakeCatalog

    def upload(self, key: str, data: bytes, bucket: str = RAW, etag: str = "") -> SourceObject:
        """Store an object and return the source its event would describe."""
        etag = etag or f"etag-{len(self.storage.objects)}"
        self.storage.objects[(bucket, key)] = StoredObject(data, etag)
        return SourceObject(bucket, key, len(data), etag, iso_ms(T0))

    def run(self, source: SourceObject, settings: Settings = SETTINGS, **kw: Any) -> Outcome:
        clock: Iterator[datetime] = (T0 + timedelta(seconds=s) for s in range(1, 100))
        return process_source(
            source, settings, self.storage, self.catalog, now=lambda: next(clock), **kw
        )

    def record(self, source: SourceObject) -> ImageRecord | None:
        return self.catalog.get(source.image_id)
