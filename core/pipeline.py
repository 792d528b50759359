"""The per-record pipeline: fetch -> render -> store -> record -> clean up, over the storage
and catalog ports of ``core.ports`` (``core.aws`` implements them with boto3). A removal
records a DELETED tombstone, then cleans up; the clean-up deletes the outputs that the
written item no longer points at (README, "An image's life").

Outcomes follow DESIGN.md's taxonomy: a rejected image is recorded as FAILED and acknowledged,
a skipped record is acknowledged, and a transient failure propagates so the message is retried.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from core.catalog import ImageRecord, Rendition, Status, Timings
from core.errors import Rejected, Skipped, Transient
from core.events import SourceObject, iso_ms
from core.imaging import ImageRejected
from core.imaging.engine import EncodedRendition, RenderResult, render
from core.imaging.parallel import shared_encoder
from core.ports import Catalog, Deadline, Storage
from core.settings import Settings
from core.tenancy import owner_of_key

SKIPPED: Final = "SKIPPED"
NO_ETAG_VERSION: Final = "0" * 8  # the version part of the keys of a source sent without ETag
_DAY_S: Final = 86_400


@dataclass(frozen=True)
class Outcome:
    """What happened to one source object. ``status`` is PROCESSED, FAILED, DELETED or
    SKIPPED, and ``record`` what was written for the first three. ``leftover`` lists outputs
    that should have been deleted but could not be (``imgpipe reconcile --fix`` finds them)."""

    source: SourceObject
    status: str
    reason: str | None = None
    record: ImageRecord | None = None
    bytes_out: int = 0
    leftover: tuple[str, ...] = ()

    @property
    def processing_ms(self) -> float:
        timings = self.record.timings_ms if self.record else None
        return timings.total_ms if timings is not None else 0.0


def source_version(etag: str, profile: str) -> str:
    """The version part of an output key: the source's ETag (8 characters) and the rendering
    profile, so that new bytes always get a new key (immutable caching stays correct) while a
    retry of the same version and profile writes the same keys again."""
    tag = etag.strip('"')[:8] or NO_ETAG_VERSION
    return f"{tag}-{profile}"


def output_key(
    rendition: str,
    source_key: str,
    extension: str,
    *,
    bucket: str,
    raw_bucket: str,
    version: str,
) -> str:
    """``{rendition}/{source_key}.{version}.{extension}``: deterministic, so a retry
    overwrites its own output and never adds more.

    A source outside the raw bucket gets ``{rendition}@{bucket}/...``: rendition names hold no
    ``@`` and bucket names no ``/``, so the first segment tells every source bucket apart and
    no two sources ever share an output key. The version (``source_version``) holds no ``.``.
    """
    folder = rendition if bucket == raw_bucket else f"{rendition}@{bucket}"
    return f"{folder}/{source_key}.{version}.{extension}"


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
    if source.bucket == settings.output_bucket:
        raise ValueError("refusing to process the output bucket (recursion guard)")
    if source.removed:
        return _remove(source, settings, storage, catalog, attempts, now(), deadline)
    started_at = iso_ms(now())
    order = (source.event_time, source.order)
    try:
        if source.size > settings.max_bytes:
            raise Rejected("too_large", f"event size {source.size} exceeds {settings.max_bytes}")
        deadline.check("lookup")
        order = _recorded_as(catalog.get(source.image_id, deadline), source, settings.profile)
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
            order=order,
            reason=rejection.reason,
            detail=rejection.detail,
        )
        outcome = Outcome(source, Status.FAILED, rejection.reason, failed)
        return _write(catalog, storage, settings, outcome, deadline)
    store_started = time.perf_counter()
    renditions = _store(source, result, settings, storage, deadline)
    timings = Timings(fetch=fetch_ms, store=_ms_since(store_started), **result.timings_ms)
    processed = _new_record(
        source,
        Status.PROCESSED,
        started_at,
        iso_ms(now()),
        attempts,
        order=order,
        result=result,
        renditions=renditions,
        timings=timings,
        profile=settings.profile,
    )
    bytes_out = sum({r.key: r.bytes for r in renditions}.values())  # what was written
    outcome = Outcome(source, Status.PROCESSED, None, processed, bytes_out)
    return _write(catalog, storage, settings, outcome, deadline)


def _recorded_as(
    existing: ImageRecord | None, source: SourceObject, profile: str
) -> tuple[str, str]:
    """The event time and order to record ``source`` with, or Skipped: ``duplicate`` when this version was
    processed with this profile, ``stale`` when a newer event is recorded (a deleted key
    stays deleted for its older creations).

    Another event for the version already recorded (a backfill or ``--reprocess`` of it,
    whose order is the object's LastModified, not S3's event time) renders it again and keeps
    the recorded time and order, so the conditional write still refuses anything older.
    """
    if existing is None:
        return source.event_time, source.order
    same_version = (
        existing.status is not Status.DELETED and bool(source.etag) and existing.etag == source.etag
    )
    if same_version and not source.force and existing.is_processed(source.etag, profile):
        raise Skipped("duplicate", f"ETag {source.etag} already processed with profile {profile}")
    if existing.event_order <= source.order:
        return source.event_time, source.order
    if same_version:
        return existing.event_time, existing.event_order
    raise Skipped("stale", f"a newer event ({existing.status.value}) is already recorded")


def _remove(
    source: SourceObject,
    settings: Settings,
    storage: Storage,
    catalog: Catalog,
    attempts: int,
    moment: datetime,
    deadline: Deadline,
) -> Outcome:
    """An ObjectRemoved record: a DELETED item (a tombstone, so that an older creation that
    arrives later does nothing), which the table's TTL forgets after the retention; then the
    renditions of the item it replaced are deleted."""
    at = iso_ms(moment)
    retention_s = settings.deleted_retention_days * _DAY_S
    tombstone = ImageRecord(
        bucket=source.bucket,
        key=source.key,
        status=Status.DELETED,
        etag=source.etag,
        version_id=source.version_id,
        event_time=source.event_time,
        event_order=source.order,
        started_at=at,
        finished_at=at,
        attempts=attempts,
        deleted_at=at,
        expires_at=int(moment.timestamp()) + retention_s,
    )
    outcome = Outcome(source, Status.DELETED, None, tombstone)
    return _write(catalog, storage, settings, outcome, deadline)


def _new_record(
    source: SourceObject,
    status: Status,
    started_at: str,
    finished_at: str,
    attempts: int,
    *,
    order: tuple[str, str],
    reason: str | None = None,
    detail: str | None = None,
    result: RenderResult | None = None,
    renditions: tuple[Rendition, ...] = (),
    timings: Timings | None = None,
    profile: str | None = None,
) -> ImageRecord:
    """The record of ``source`` at ``order`` (event time, event order): a FAILED one has
    ``reason`` and ``detail``, a PROCESSED one the render ``result``, the stored
    ``renditions``, the ``timings`` and the ``profile``."""
    image = result.source if result else None
    return ImageRecord(
        bucket=source.bucket,
        key=source.key,
        status=status,
        reason=reason,
        etag=source.etag,
        size=source.size,
        version_id=source.version_id,
        event_time=order[0],
        event_order=order[1],
        started_at=started_at,
        finished_at=finished_at,
        attempts=attempts,
        renditions=renditions,
        detail=detail,
        format=image.format if image else None,
        width=image.width if image else None,
        height=image.height if image else None,
        timings_ms=timings,
        profile=profile,
        placeholder=result.placeholder.thumbhash if result and result.placeholder else None,
        color=result.placeholder.color if result and result.placeholder else None,
        owner=owner_of_key(source.key),
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
    version = source_version(source.etag, settings.profile)
    keys = [
        output_key(
            rendition.name,
            source.key,
            rendition.extension,
            bucket=source.bucket,
            raw_bucket=settings.raw_bucket,
            version=version,
        )
        for rendition in result.renditions
    ]
    # Identical outputs (a small source that several sizes keep as it is) are stored once:
    # the later renditions point at the first one's key.
    stored: dict[bytes, tuple[str, EncodedRendition]] = {}
    for rendition, key in zip(result.renditions, keys, strict=True):
        stored.setdefault(rendition.data, (key, rendition))

    def put(item: tuple[str, EncodedRendition]) -> None:
        key, rendition = item
        deadline.check(f"store {rendition.name}")  # none starts past the deadline
        storage.put(
            settings.output_bucket, key, rendition.data, rendition.content_type, metadata,
            deadline,
        )  # fmt: skip

    # settings.parallel_puts at a time (each mostly waits on S3). Leaving the block waits for
    # every PUT; the first failure, in rendition order, propagates.
    with ThreadPoolExecutor(max(1, min(settings.parallel_puts, len(stored)))) as writers:
        for _ in writers.map(put, stored.values()):
            pass
    return tuple(
        Rendition(
            name=rendition.name,
            key=stored[rendition.data][0],
            format=rendition.format,
            width=rendition.width,
            height=rendition.height,
            bytes=len(rendition.data),
        )
        for rendition in result.renditions
    )


def _write(
    catalog: Catalog, storage: Storage, settings: Settings, outcome: Outcome, deadline: Deadline
) -> Outcome:
    """Record the outcome, then delete the outputs nobody points at any more: those of the item
    it replaced that the new one does not use (renditions may share a key), or, when a newer
    event's result is already recorded (SKIPPED stale), our own that the winner does not use.
    The item never points at a deleted object: deletes come after the write that drops them."""
    record = outcome.record
    assert record is not None
    deadline.check("record")
    replaced = catalog.put(record, deadline)
    if replaced is None:
        winner = catalog.get(record.image_id, deadline) if record.output_keys else None
        kept = winner.output_keys if winner else frozenset()
        lost = Outcome(outcome.source, SKIPPED, "stale")
        return _clean_up(storage, settings, record.output_keys - kept, lost, deadline)
    previous = replaced.previous.output_keys if replaced.previous else frozenset()
    return _clean_up(storage, settings, previous - record.output_keys, outcome, deadline)


def _clean_up(
    storage: Storage,
    settings: Settings,
    keys: frozenset[str],
    outcome: Outcome,
    deadline: Deadline,
) -> Outcome:
    """Delete ``keys`` from the output bucket. The record is already written, so a failure
    here does not fail the message (a retry would find nothing left to clean): the keys are
    returned as ``leftover``, logged, and ``imgpipe reconcile --fix`` removes them."""
    if not keys:
        return outcome
    try:
        deadline.check("clean up")
        storage.delete(settings.output_bucket, keys, deadline)
    except Transient:
        return replace(outcome, leftover=tuple(sorted(keys)))
    return outcome


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
