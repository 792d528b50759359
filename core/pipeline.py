"""The per-record pipeline: fetch -> render -> store -> record, over the storage and catalog
ports of ``core.ports`` (``core.aws`` implements them with boto3).

Outcomes follow DESIGN.md's taxonomy: a rejected image is recorded as FAILED and acknowledged,
a skipped record is acknowledged, and a transient failure propagates so the message is retried.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from core.catalog import ImageRecord, Rendition, Status, Timings
from core.errors import Rejected, Skipped
from core.events import SourceObject, iso_ms
from core.imaging import ImageRejected, RenderResult, render
from core.imaging.parallel import shared_encoder
from core.ports import Catalog, Deadline, Storage
from core.settings import Settings

SKIPPED: Final = "SKIPPED"


@dataclass(frozen=True)
class Outcome:
    """What happened to one source object. ``status`` is PROCESSED, FAILED or SKIPPED, and
    ``record`` what was written for the first two."""

    source: SourceObject
    status: str
    reason: str | None = None
    record: ImageRecord | None = None
    bytes_out: int = 0

    @property
    def processing_ms(self) -> float:
        timings = self.record.timings_ms if self.record else None
        return timings.total_ms if timings is not None else 0.0


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
    deadline: Deadline | None = None,
) -> Outcome:
    """Run one source object through the pipeline (transient errors propagate).

    ``deadline`` is checked before every stage and bounds every AWS call: a record that runs
    short raises DeadlineExceeded (transient) instead of outliving its invocation.
    """
    deadline = deadline or Deadline.unbounded()
    started_at = iso_ms(now())
    if source.bucket == settings.output_bucket:
        raise ValueError("refusing to process the output bucket (recursion guard)")
    try:
        if source.size > settings.max_bytes:
            raise Rejected("too_large", f"event size {source.size} exceeds {settings.max_bytes}")
        deadline.check("lookup")
        existing = catalog.get(source.image_id, deadline)
        if existing and existing.is_processed(source.etag):
            raise Skipped("duplicate", f"ETag {source.etag} already processed")
        deadline.check("fetch")
        fetch_started = time.perf_counter()
        data = storage.get(source.bucket, source.key, source.etag, settings.max_bytes, deadline)
        fetch_ms = _ms_since(fetch_started)
        encoder = shared_encoder(settings.encode_threads)
        result = render(data, settings.renditions, settings.limits, deadline.check, encoder)
    except Skipped as skip:
        return Outcome(source, SKIPPED, skip.reason)
    except ImageRejected as rejection:  # the engine's, and Rejected from storage
        failed = _new_record(
            source,
            Status.FAILED,
            started_at,
            iso_ms(now()),
            attempts,
            reason=rejection.reason,
            detail=rejection.detail,
        )
        return _write(catalog, Outcome(source, Status.FAILED, rejection.reason, failed), deadline)
    store_started = time.perf_counter()
    renditions = _store(source, result, settings, storage, deadline)
    timings = Timings(fetch=fetch_ms, store=_ms_since(store_started), **result.timings_ms)
    processed = _new_record(
        source,
        Status.PROCESSED,
        started_at,
        iso_ms(now()),
        attempts,
        result=result,
        renditions=renditions,
        timings=timings,
    )
    bytes_out = sum({r.key: r.bytes for r in renditions}.values())  # what was written
    return _write(catalog, Outcome(source, Status.PROCESSED, None, processed, bytes_out), deadline)


def _new_record(
    source: SourceObject,
    status: Status,
    started_at: str,
    finished_at: str,
    attempts: int,
    *,
    reason: str | None = None,
    detail: str | None = None,
    result: RenderResult | None = None,
    renditions: tuple[Rendition, ...] = (),
    timings: Timings | None = None,
) -> ImageRecord:
    """The record of ``source``: a FAILED one has ``reason`` and ``detail``, a PROCESSED one
    the render ``result``, the stored ``renditions`` and the ``timings``."""
    image = result.source if result else None
    return ImageRecord(
        bucket=source.bucket,
        key=source.key,
        status=status,
        reason=reason,
        etag=source.etag,
        size=source.size,
        version_id=source.version_id,
        event_time=source.event_time,
        event_order=source.order,
        started_at=started_at,
        finished_at=finished_at,
        attempts=attempts,
        renditions=renditions,
        detail=detail,
        format=image.format if image else None,
        width=image.width if image else None,
        height=image.height if image else None,
        timings_ms=timings,
    )


def _store(
    source: SourceObject,
    result: RenderResult,
    settings: Settings,
    storage: Storage,
    deadline: Deadline,
) -> tuple[Rendition, ...]:
    metadata = {
        "source-bucket": source.bucket,
        "source-key": source.key,
        "source-etag": source.etag,
    }
    renditions = []
    # Identical outputs (a small source that several sizes keep as it is) are stored once:
    # the later renditions point at the first one's key.
    stored: dict[bytes, str] = {}
    for rendition in result.renditions:
        key = output_key(
            rendition.name,
            source.key,
            rendition.extension,
            bucket=source.bucket,
            raw_bucket=settings.raw_bucket,
        )
        if rendition.data not in stored:
            deadline.check(f"store {rendition.name}")
            storage.put(
                settings.output_bucket, key, rendition.data, rendition.content_type, metadata,
                deadline,
            )  # fmt: skip
        key = stored.setdefault(rendition.data, key)
        renditions.append(
            Rendition(
                name=rendition.name,
                key=key,
                format=rendition.format,
                width=rendition.width,
                height=rendition.height,
                bytes=len(rendition.data),
            )
        )
    return tuple(renditions)


def _write(catalog: Catalog, outcome: Outcome, deadline: Deadline) -> Outcome:
    """The outcome, or SKIPPED stale when a newer event's result is already recorded."""
    assert outcome.record is not None
    deadline.check("record")
    if catalog.put(outcome.record, deadline):
        return outcome
    return Outcome(outcome.source, SKIPPED, "stale")


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
