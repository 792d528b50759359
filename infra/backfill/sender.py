"""A sender: one work unit at a time, from its items to messages in the jobs queue."""

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from queue import Empty
from typing import Any, Final

from core.catalog import Status
from core.events import BACKFILL_EVENT_NAME, REPROCESS_EVENT_NAME, iso_ms
from infra.backfill.clients import FATAL_CODES, MISSING_CODES, Clients, error_code
from infra.backfill.messages import MessageBuilder
from infra.backfill.options import Options
from infra.backfill.ratelimit import TokenBucket
from infra.backfill.state import FailureLog
from infra.backfill.work import (
    SQS_BATCH,
    UNIT_SIZE,
    Counts,
    Flag,
    Item,
    Report,
    WorkQueue,
    zero_counts,
)

# SendMessageBatch entry ids: an item's index in its unit, so a failed entry maps back to it.
_ENTRY_IDS: Final = tuple(str(i) for i in range(UNIT_SIZE))
Entry = dict[str, str]  # a SendMessageBatch entry: {"Id": ..., "MessageBody": ...}


class Sender:
    """Sends work units: HeadObject where the source lacks metadata, the metadata filters,
    BatchGetItem (--skip-processed, --reprocess outdated), then SendMessageBatch with retries.
    One per process, shared by that process's sender threads."""

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
        forced = options.reprocess == "all"
        self.builder = MessageBuilder(
            options.bucket, REPROCESS_EVENT_NAME if forced else BACKFILL_EVENT_NAME
        )
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
            counts = self.process(unit.items, heads)
            if counts is not None:
                report(unit.chunk_id, counts)

    def process(self, items: list[Item], heads: ThreadPoolExecutor) -> Counts | None:
        """Send one unit; the counts, or None when a stop abandoned it part-way."""
        opts = self.options
        counts = zero_counts()
        if opts.head and not all(item.has_metadata for item in items):
            resolved = self._head_all(items, heads, counts)
            if resolved is None:
                return None
            before = len(resolved)
            items = [i for i in resolved if opts.filters.metadata_ok(i.size, i.modified)]
            counts["filtered"] += before - len(items)
        if opts.reads_table and items:
            before = len(items)
            items = self._select_by_record(items)
            counts["skipped_processed"] += before - len(items)
        if not items:
            return counts
        if opts.dry_run:
            self.keep_sample(items)
            counts["sent"] += len(items)
            return counts
        build, now = self.builder.build, self.now
        entries = [
            {
                "Id": _ENTRY_IDS[n],
                "MessageBody": build(key, size or 0, etag or "", modified or now),
            }
            for n, (key, size, etag, modified) in enumerate(items)
        ]
        return counts if self._send(items, entries, counts) else None

    def _send(self, items: list[Item], entries: list[Entry], counts: Counts) -> bool:
        """SendMessageBatch in tens, failed entries retried with backoff, then recorded.
        False when a stop or an abort abandoned the unit."""
        opts = self.options
        pending = entries
        attempt = 0
        while pending:
            failed: list[tuple[Entry, str]] = []
            for start in range(0, len(pending), SQS_BATCH):
                batch = pending[start : start + SQS_BATCH]
                outcome = self._send_batch(batch, counts)
                if outcome is None:
                    return False
                failed.extend(outcome)
            if not failed:
                return True
            attempt += 1
            if attempt > opts.retries:
                for entry, code in failed:
                    item = items[int(entry["Id"])]
                    self.failures.write(opts.bucket, item, f"SendMessageBatch: {code}", attempt)
                counts["failed"] += len(failed)
                return True
            counts["retried"] += len(failed)
            if self._stop.wait(self._backoff(attempt)):
                return False
            pending = [entry for entry, _ in failed]
        return True

    def _send_batch(self, batch: list[Entry], counts: Counts) -> list[tuple[Entry, str]] | None:
        """One SendMessageBatch call: the entries that failed, with their codes (None when
        stopped first). Raises on an error that no retry fixes."""
        if self._abort.is_set():
            return None
        limit = self.bucket_limit
        if limit is not None and not limit.acquire(len(batch), self._stop):
            return None
        try:
            response = self.clients.sqs.send_message_batch(
                QueueUrl=self.options.queue_url, Entries=batch
            )
        except Exception as exc:
            code = error_code(exc)
            if code in FATAL_CODES:
                raise  # no key can be sent: stop the run rather than fail every key
            return [(e, code) for e in batch]
        ok = response.get("Successful") or ()
        bad = response.get("Failed") or ()
        if not bad and len(ok) == len(batch):
            counts["sent"] += len(batch)
            return []
        succeeded = {s["Id"] for s in ok}
        codes = {f["Id"]: str(f.get("Code", "Failed")) for f in bad}
        failed = []
        for entry in batch:
            entry_id = entry["Id"]
            if entry_id in succeeded and entry_id not in codes:
                counts["sent"] += 1
            else:  # in Failed, or in neither list: never assume it was sent
                failed.append((entry, codes.get(entry_id, "NotAcknowledged")))
        return failed

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
        if item.has_metadata:
            return item, ""
        error = ""
        for attempt in range(1, self.options.retries + 2):
            if self._stop.is_set():
                return None, "stopped"
            try:
                head = self.clients.s3.head_object(Bucket=self.options.bucket, Key=item.key)
                return Item(
                    item.key,
                    int(head["ContentLength"]),
                    str(head.get("ETag", "")).strip('"'),
                    head["LastModified"],
                ), ""
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
                code = error_code(exc)
                if code in MISSING_CODES:
                    return None, "missing"
                error = f"HeadObject: {code}"
                if code in ("403", "AccessDenied"):
                    break
            if self._stop.wait(self._backoff(attempt)):
                return None, "stopped"
        return None, error

    def _select_by_record(self, items: list[Item]) -> list[Item]:
        """With --skip-processed, the items not already PROCESSED with the same ETag and the
        current profile; with --reprocess outdated, only those PROCESSED with another profile
        (or none: recorded before profiles). If the table cannot be read after retries, every
        item is sent (a duplicate is harmless; the handler skips it)."""
        opts = self.options
        recorded = self._processed_records(items)
        if recorded is None:
            return items
        bucket, profile = opts.bucket, opts.profile
        if opts.reprocess == "outdated":
            return [
                item
                for item in items
                if (found := recorded.get(f"{bucket}/{item.key}")) and found[1] != profile
            ]
        return [
            item
            for item in items
            if not item.etag
            or recorded.get(f"{bucket}/{item.key}") != (item.etag.strip('"'), profile)
        ]

    def _processed_records(self, items: list[Item]) -> dict[str, tuple[str, str]] | None:
        """The (ETag, profile) of the items recorded PROCESSED, by image id, from BatchGetItems
        of the unit (at most 100 keys); None when the table cannot be read after retries."""
        table = self.options.table
        dynamodb = self.clients.dynamodb
        assert table is not None and dynamodb is not None
        bucket = self.options.bucket
        ids = list(dict.fromkeys(f"{bucket}/{item.key}" for item in items))
        done: dict[str, tuple[str, str]] = {}
        request: dict[str, Any] | None = {
            table: {
                "Keys": [{"image_id": {"S": image_id}} for image_id in ids],
                "ProjectionExpression": "image_id, #s, etag, #p",
                "ExpressionAttributeNames": {"#s": "status", "#p": "profile"},
            }
        }
        attempt = 0
        while request:
            try:
                response = dynamodb.batch_get_item(RequestItems=request)
            except Exception:  # noqa: BLE001 - retried like unprocessed keys, then sent anyway
                response = {"UnprocessedKeys": request}
            for row in response.get("Responses", {}).get(table, []):
                if row.get("status", {}).get("S") == Status.PROCESSED:
                    etag = row.get("etag", {}).get("S", "")
                    done[row["image_id"]["S"]] = (etag, row.get("profile", {}).get("S", ""))
            request = response.get("UnprocessedKeys") or None
            if request:
                attempt += 1
                if attempt > self.options.retries or self._stop.wait(self._backoff(attempt)):
                    return None
        return done

    def keep_sample(self, items: list[Item]) -> None:
        with self._sample_lock:
            for item in items:
                if len(self.sample) >= self.options.sample_size:
                    return
                self.sample.append(
                    {
                        "key": item.key,
                        "size": item.size,
                        "etag": item.etag,
                        "last_modified": iso_ms(item.modified) if item.modified else None,
                    }
                )
