"""Account for every key sent into the pipeline: PROCESSED, FAILED (with a reason) or DLQ."""

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from core.aws import from_dynamo
from core.events import NotAnS3Event, parse_body

FINAL = ("PROCESSED", "FAILED")


@dataclass
class Tracker:
    """Poll the images table (BatchGetItem, 100 keys a call) and the DLQ for pending keys."""

    bucket: str
    table: str
    dlq_url: str
    pending: dict[str, float] = field(default_factory=dict)  # key -> time it was sent
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._dynamodb = boto3.client("dynamodb")
        self._sqs = boto3.client("sqs")
        self._deserialise = TypeDeserializer().deserialize

    def sent(self, key: str, at: float | None = None) -> None:
        self.pending[key] = time.time() if at is None else at

    @property
    def accounted(self) -> int:
        return len(self.items) + len(self.dead)

    def poll(self) -> None:
        keys = list(self.pending)
        for start in range(0, len(keys), 100):
            self._fetch(keys[start : start + 100])
        if self.pending:
            self._check_dlq()

    def _fetch(self, keys: list[str]) -> None:
        request: dict[str, Any] = {
            self.table: {
                "Keys": [{"image_id": {"S": f"{self.bucket}/{k}"}} for k in keys],
                "ConsistentRead": True,
            }
        }
        while request:
            response = self._dynamodb.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(self.table, []):
                item = from_dynamo({k: self._deserialise(v) for k, v in raw.items()})
                if item.get("status") in FINAL and item["key"] in self.pending:
                    item["sent_at"] = self.pending.pop(item["key"])
                    self.items[item["key"]] = item
            request = response.get("UnprocessedKeys") or {}

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
