"""Account for every key a load test sent: recorded in the table (PROCESSED or FAILED, with
a reason) or in the dead-letter queue. The table is read often, the DLQ on its own, slower
schedule, and the whole DLQ once at the end for the keys still pending."""

from typing import Any

import boto3

from core.aws import images_catalog
from core.events import parse_body
from infra.local.accounting import recorded


class LoadTracker:
    def __init__(self, bucket: str, table: str, dlq_url: str, region: str) -> None:
        self.bucket = bucket
        self.table = table
        self.dlq_url = dlq_url
        self.pending: dict[str, float] = {}  # key -> time it was sent
        self.items: dict[str, dict[str, Any]] = {}  # key -> its table item, once final
        self.dead: set[str] = set()
        self._catalog = images_catalog(table, region=region)
        self._sqs: Any = boto3.client("sqs", region_name=region)

    def sent(self, key: str, at: float) -> None:
        self.pending[key] = at

    @property
    def accounted(self) -> int:
        return len(self.items) + len(self.dead)

    def poll_table(self) -> None:
        """Read the pending keys' items (consistent reads) and keep the recorded ones."""
        for key, item in recorded(self._catalog, self.bucket, self.pending).items():
            del self.pending[key]
            self.items[key] = item

    def peek_dlq(self) -> None:
        """Look at up to 10 DLQ messages, leaving them visible."""
        if self.pending:
            self._read_dlq(visibility_timeout=0)

    def scan_dlq(self) -> None:
        """Read the whole DLQ (hiding what was read for a minute) for keys still pending."""
        empty = 0
        while self.pending and empty < 2:
            empty = 0 if self._read_dlq(visibility_timeout=60) else empty + 1

    def _read_dlq(self, visibility_timeout: int) -> int:
        messages = self._sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        for message in messages:
            try:
                keys = [source.key for source in parse_body(message["Body"])]
            except ValueError:  # not an S3 event: nothing of ours
                continue
            for key in keys:
                if self.pending.pop(key, None) is not None:
                    self.dead.add(key)
        return len(messages)
