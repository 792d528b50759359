"""The per-record pipeline: fetch -> render -> store -> record, over small storage and catalog
interfaces (``core.aws`` implements them with boto3).

Outcomes follow DESIGN.md's taxonomy: a rejected image is recorded as FAILED and acknowledged,
a skipped record is acknowledged, and a transient failure propagates so the message is retried.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core.errors import Rejected, Skipped
from core.events import SourceObject, iso_ms
from core.imaging import ImageRejected, RenderResult, render
from core.settings import Settings


class Storage(Protocol):
    def get(self, bucket: str, key: str, etag: str, max_bytes: int) -> bytes:
        """The object's bytes if its ETag still matches; Skipped(stale|source_missing) if not,
        Rejected(access_denied) when this function may not read it."""

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: Mapping[str, str]
    ) -> None: ...


class Catalog(Protocol):
    def get(self, image_id: str) -> Mapping[str, Any] | None: ...

    def put(self, item: Mapping[str, Any]) -> bool:
        """Write ``item`` unless a newer event already wrote one; False when it was older."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one source object. ``status`` is PROCESSED, FAILED or SKIPPED."""

    source: SourceObject
    status: str
    reason: str | None = None
    item: Mapping[str, Any] | None = None
    bytes_out: int = 0

    @property
    def processing_ms(self) -> float:
        timings = (self.item or {}).get("timings_ms", {})
        return float(sum(float(v) for v in timings.values()))


def output_key(
    rendition: str, source_key: str, extension: str, *, bucket: str, raw_bucket: str
) -> str:
    """Deterministic, so a retry overwrites its own output and never adds more.

    A source outside the raw bucket gets ``{rendition}@{bucket}/...``: rendition names hold no
    ``@`` and bucket names no ``/``, so the first segment tells every source bucket apart and
    no two sources ever share an output key.
    """
    folder = rendition if bucket == raw_bucket else f"{rendition}@{bucket}"
    return f"{folder}/{source_key}.{extension}"


def process_source(
    source: SourceObject,
    settings: Settings,
    storage: Storage,
    catalog: Catalog,
    attempts: int = 1,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Run one source object through the pipeline (transient errors propagate)."""
    started_at = iso_ms(now())
    if source.bucket == settings.output_bucket:
        raise ValueError("refusing to process the output bucket (recursion guard)")
    base = _base_item(source, started_at, attempts)
    try:
        if source.size > settings.max_bytes:
            raise Rejected("too_large", f"event size {source.size} exceeds {settings.max_bytes}")
        existing = catalog.get(source.image_id)
        if (
            existing
            and existing.get("status") == "PROCESSED"
            and (existing.get("etag") == source.etag)
        ):
            raise Skipped("duplicate", f"ETag {source.etag} already processed")
        fetch_started = time.perf_counter()
        data = storage.get(source.bucket, source.key, source.etag, settings.max_bytes)
        fetch_ms = _ms_since(fetch_started)
        result = render(data, settings.renditions, settings.limits)
    except Skipped as skip:
        return Outcome(source, "SKIPPED", skip.reason)
    except ImageRejected as rejection:  # the engine's, and Rejected from storage
        item = {**base, "status": "FAILED", "reason": rejection.reason, "detail": rejection.detail}
        item["finished_at"] = iso_ms(now())
        return _record(catalog, Outcome(source, "FAILED", rejection.reason, item))
    store_started = time.perf_counter()
    renditions = _store(source, result, settings, storage)
    item = {
        **base,
        "status": "PROCESSED",
        "reason": None,
        "format": result.source.format,
        "width": result.source.width,
        "height": result.source.height,
        "renditions": renditions,
        "timings_ms": {"fetch": fetch_ms, **result.timings_ms, "store": _ms_since(store_started)},
        "finished_at": iso_ms(now()),
    }
    bytes_out = sum(r["bytes"] for r in renditions)
    return _record(catalog, Outcome(source, "PROCESSED", None, item, bytes_out))


def _base_item(source: SourceObject, started_at: str, attempts: int) -> dict[str, Any]:
    return {
        "image_id": source.image_id,
        "bucket": source.bucket,
        "key": source.key,
        "etag": source.etag,
        "size": source.size,
        "version_id": source.version_id,
        "event_time": source.event_time,
        "event_order": source.order,
        "started_at": started_at,
        "attempts": attempts,
        "renditions": [],
    }


def _store(
    source: SourceObject, result: RenderResult, settings: Settings, storage: Storage
) -> list[dict[str, Any]]:
    metadata = {
        "source-bucket": source.bucket,
        "source-key": source.key,
        "source-etag": source.etag,
    }
    renditions = []
    for rendition in result.renditions:
        key = output_key(
            rendition.name,
            source.key,
            rendition.extension,
            bucket=source.bucket,
            raw_bucket=settings.raw_bucket,
        )
        storage.put(settings.output_bucket, key, rendition.data, rendition.content_type, metadata)
        renditions.append(
            {
                "name": rendition.name,
                "key": key,
                "format": rendition.format,
                "width": rendition.width,
                "height": rendition.height,
                "bytes": len(rendition.data),
            }
        )
    return renditions


def _record(catalog: Catalog, outcome: Outcome) -> Outcome:
    assert outcome.item is not None
    if catalog.put(outcome.item):
        return outcome
    return Outcome(outcome.source, "SKIPPED", "stale")


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
