"""One reconcile run: scan, two merges, the findings and (with ``fix``) their repairs.

Repairs reuse the code that does the same thing elsewhere: sources without a result are sent
by backfill's ``Sender`` (the same S3-event-shaped messages), a result without a source gets
the pipeline's own removal (a DELETED tombstone, then its renditions deleted), and an
unreferenced rendition is deleted through the storage adapter.
"""

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from core.aws import DynamoCatalog, S3Storage
from core.catalog import Status
from core.errors import Rejected, Transient
from core.events import SourceObject, iso_ms
from core.pipeline import process_source
from core.settings import Settings
from infra.backfill.sender import Sender
from infra.backfill.work import UNIT_SIZE, Item
from infra.reconcile.merge import merge_join
from infra.reconcile.scan import Listed, list_bucket, scan_table
from infra.reconcile.sorting import DEFAULT_CHUNK, ExternalSorter

KINDS: Final = ("source_without_result", "result_without_source", "unreferenced_rendition")
COUNTS: Final = (
    "items_scanned", "raw_listed", "processed_listed", *KINDS, "too_young",
    "enqueued", "marked_deleted", "renditions_deleted", "fix_failed",
)  # fmt: skip
DELETE_BATCH: Final = 100  # unreferenced renditions deleted per storage call
Tick = Callable[[str, dict[str, int]], None]  # (phase, counts) after every page


@dataclass
class Finding:
    kind: str
    key: str
    why: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Report:
    raw_bucket: str
    processed_bucket: str
    table: str
    fix: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    samples: dict[str, list[dict[str, str]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    complete: bool = False
    interrupted: bool = False
    other_buckets: int = 0  # items of backfill source buckets, which are not compared
    elapsed_s: float = 0.0

    @property
    def drift(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "drift": self.drift}


@dataclass
class Fixers:
    """What ``--fix`` acts with: backfill's sender, and the pipeline's adapters."""

    sender: Sender
    storage: S3Storage
    catalog: DynamoCatalog


class Reconcile:
    def __init__(
        self,
        settings: Settings,
        s3: Any,
        dynamodb: Any,
        *,
        fixers: Fixers | None = None,
        min_age_s: float = 3600.0,
        sample_size: int = 20,
        chunk: int = DEFAULT_CHUNK,
        stop: threading.Event | None = None,
        now: datetime | None = None,
    ) -> None:
        self.settings, self.s3, self.dynamodb, self.fixers = settings, s3, dynamodb, fixers
        self.sample_size, self.chunk = sample_size, chunk
        self.stop = stop or threading.Event()
        self.now = now or datetime.now(UTC)
        self.cutoff = self.now - timedelta(seconds=min_age_s)  # younger objects may be in flight
        s = settings
        self.report = Report(s.raw_bucket, s.output_bucket, s.table, fixers is not None)
        self._tick: Tick = lambda _phase, _counts: None
        self._pending: list[Item] = []
        self._doomed: list[str] = []

    def run(self, tick: Tick | None = None) -> Report:
        self._tick = tick or self._tick
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="imgpipe-reconcile-") as folder:
            self._compare(Path(folder))
        self.report.elapsed_s = round(time.monotonic() - started, 3)
        self.report.interrupted = self.stop.is_set()
        self.report.complete = not self.report.interrupted
        return self.report

    def _compare(self, folder: Path) -> None:
        s = self.settings
        scanned = scan_table(
            self.dynamodb, s.table, s.raw_bucket,
            lambda: ExternalSorter(folder, self.chunk), self._progress("items_scanned", "scan"),
        )  # fmt: skip
        if scanned is None:
            return
        self.report.other_buckets = scanned.other_buckets
        raw = list_bucket(self.s3, s.raw_bucket, self._progress("raw_listed", "raw"))
        for image, obj in merge_join(scanned.images.sorted(), raw):
            self._compare_source(image, obj)
        self._flush_sends()
        if self.stop.is_set():
            return
        out = list_bucket(self.s3, s.output_bucket, self._progress("processed_listed", "cdn"))
        for ref, obj in merge_join(scanned.outputs.sorted(), out):
            if ref is None and obj is not None:
                self._compare_output(obj)
        self._flush_deletes()

    def _progress(self, count: str, phase: str) -> Callable[[int], bool]:
        def step(n: int) -> bool:
            self.report.counts[count] += n
            self._tick(phase, self.report.counts)
            return not self.stop.is_set()

        return step

    def _compare_source(self, image: tuple[Any, ...] | None, obj: Listed | None) -> None:
        if obj is None:
            assert image is not None
            key, status, _ = image
            if status != Status.DELETED:
                self._found("result_without_source", key, f"{status}, no object in the bucket")
                self._mark_deleted(key)
            return
        if obj.modified > self.cutoff:
            self.report.counts["too_young"] += 1
            return
        why = ""
        if image is None:
            why = "no item"
        elif image[1] == Status.DELETED:
            why = "the item is DELETED but the object exists"
        elif image[2] and image[2] != obj.etag:
            why = f"the item is for ETag {image[2]}, the object has {obj.etag}"
        if why:
            self._found("source_without_result", obj.key, why)
            self._enqueue(obj)

    def _compare_output(self, obj: Listed) -> None:
        if obj.modified > self.cutoff:
            self.report.counts["too_young"] += 1
            return
        self._found("unreferenced_rendition", obj.key, "no item points at it")
        if self.fixers is not None:
            self._doomed.append(obj.key)
            if len(self._doomed) >= DELETE_BATCH:
                self._flush_deletes()

    def _found(self, kind: str, key: str, why: str) -> None:
        self.report.counts[kind] += 1
        if len(self.report.samples[kind]) < self.sample_size:
            self.report.samples[kind].append(Finding(kind, key, why).to_json())

    # --- fixes ---------------------------------------------------------------------------------

    def _enqueue(self, obj: Listed) -> None:
        if self.fixers is None:
            return
        self._pending.append(Item(obj.key, obj.size, obj.etag, obj.modified))
        if len(self._pending) >= UNIT_SIZE:
            self._flush_sends()

    def _flush_sends(self) -> None:
        if self.fixers is None or not self._pending:
            return
        items, self._pending = self._pending, []
        with ThreadPoolExecutor(1) as heads:  # unused: listed items carry their metadata
            counts = self.fixers.sender.process(items, heads)
        sent = counts["sent"] if counts is not None else 0
        self.report.counts["enqueued"] += sent
        self.report.counts["fix_failed"] += len(items) - sent

    def _mark_deleted(self, key: str) -> None:
        """The pipeline's removal, as of now: a tombstone, then the item's renditions deleted.
        The object is looked up first: one uploaded again since the listing is left alone."""
        if self.fixers is None:
            return
        try:
            if self.fixers.storage.head(self.settings.raw_bucket, key) is not None:
                return
        except (Transient, Rejected):
            self.report.counts["fix_failed"] += 1
            return
        removal = SourceObject(
            self.settings.raw_bucket, key, 0, "", iso_ms(datetime.now(UTC)), removed=True
        )
        try:
            outcome = process_source(removal, self.settings, self.fixers.storage,
                                     self.fixers.catalog)  # fmt: skip
        except Transient:
            self.report.counts["fix_failed"] += 1
            return
        if outcome.status == Status.DELETED:
            self.report.counts["marked_deleted"] += 1
        self.report.counts["fix_failed"] += len(outcome.leftover)

    def _flush_deletes(self) -> None:
        if self.fixers is None or not self._doomed:
            return
        keys, self._doomed = self._doomed, []
        try:
            self.fixers.storage.delete(self.settings.output_bucket, keys)
        except Transient:
            self.report.counts["fix_failed"] += len(keys)
            return
        self.report.counts["renditions_deleted"] += len(keys)
