"""Account for every key sent into the pipeline: PROCESSED, FAILED (with a reason), DELETED
(removed before or after its creation was handled) or DLQ."""

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3

from core.aws import DynamoCatalog, images_catalog
from core.events import NotAnS3Event, parse_body


def recorded(catalog: DynamoCatalog, bucket: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The table items of those of ``keys`` that have a result (consistent reads): every
    recorded status (PROCESSED, FAILED or DELETED) is final."""
    ids = {f"{bucket}/{key}": key for key in keys}
    return {ids[image_id]: record.to_item()
            for image_id, record in catalog.get_many(list(ids)).items()}  # fmt: skip


@dataclass
class Tracker:
    """Poll the images table (BatchGetItem through the catalog) and the DLQ for pending keys."""

    bucket: str
    table: str
    dlq_url: str
    pending: dict[str, float] = field(default_factory=dict)  # key -> time it was sent
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._catalog = images_catalog(self.table)
        self._sqs = boto3.client("sqs")

    def sent(self, key: str, at: float | None = None) -> None:
        self.pending[key] = time.time() if at is None else at

    @property
    def accounted(self) -> int:
        return len(self.items) + len(self.dead)

    def poll(self) -> None:
        for key, item in recorded(self._catalog, self.bucket, self.pending).items():
            self.items[key] = {**item, "sent_at": self.pending.pop(key)}
        if self.pending:
            self._check_dlq()

    def _check_dlq(self) -> None:
        """Peek at the DLQ (messages stay visible) for keys that ran out of retries."""
        messages = self._sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        for message in messages:
            for key in _keys_in(message["Body"]):
                if key in self.pending:
                    self.pending.pop(key)
                    self.dead.add(key)


def _keys_in(body: str) -> Iterable[str]:
    try:
        return [source.key for source in parse_body(body)]
    except NotAnS3Event:
        return []


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]
