"""Parse SQS message bodies into source objects: S3 notifications and backfill messages alike.

A backfill message uses exactly the S3 notification shape (see ``backfill_message``), so there
is one parsing path. Keys arrive URL-encoded the way S3 encodes them.

Two envelopes are unwrapped into that same path: an SNS notification (a topic subscribed by
the queue with raw message delivery off; with it on, the body is the S3 notification itself),
and an EventBridge event from S3, which stands for one notification record.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote_plus, unquote_plus

S3_EVENT_SOURCE: Final = "aws:s3"
EVENTBRIDGE_SOURCE: Final = "aws.s3"
EVENTBRIDGE_CREATED: Final = "Object Created"
EVENTBRIDGE_DELETED: Final = "Object Deleted"
_EVENTBRIDGE_NAMES: Final = {
    EVENTBRIDGE_CREATED: "ObjectCreated",
    EVENTBRIDGE_DELETED: "ObjectRemoved",
}
CREATED_PREFIX: Final = "ObjectCreated:"
REMOVED_PREFIX: Final = "ObjectRemoved:"
BACKFILL_EVENT_SOURCE: Final = "imgpipe:backfill"
BACKFILL_EVENT_NAME: Final = "ObjectCreated:Backfill"
# `imgpipe backfill --reprocess all`: render again even a version already processed with the
# current profile (the only event name that forces; S3 never sends it).
REPROCESS_EVENT_NAME: Final = "ObjectCreated:Reprocess"
_SEQUENCER_WIDTH: Final = 32


class NotAnS3Event(ValueError):
    """The body is neither an S3 notification nor a backfill message; it must reach the DLQ."""


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    size: int
    etag: str
    event_time: str
    version_id: str | None = None
    sequencer: str | None = None
    removed: bool = False  # an ObjectRemoved record: the source is gone (size and ETag unknown)
    force: bool = False  # a backfill --reprocess all record: render even a duplicate

    @classmethod
    def from_head(cls, bucket: str, key: str, head: Mapping[str, Any]) -> "SourceObject":
        """The object as its creation event would describe it, from its HeadObject answer."""
        return cls(
            bucket=bucket,
            key=key,
            size=int(head["ContentLength"]),
            etag=str(head["ETag"]).strip('"'),
            event_time=iso_ms(head["LastModified"]),
            version_id=head.get("VersionId"),
        )

    @property
    def image_id(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def order(self) -> str:
        """A string that sorts events on the same object oldest first (event time, then S3's
        hexadecimal sequencer, left-padded so that it compares as a number)."""
        sequencer = (self.sequencer or "").upper().rjust(_SEQUENCER_WIDTH, "0")
        return f"{self.event_time}#{sequencer}"


def parse_body(body: str) -> list[SourceObject]:
    """The ObjectCreated and ObjectRemoved records of one message body ([] for
    ``s3:TestEvent`` or other events), bare or in an SNS envelope; an EventBridge ``Object
    Created`` or ``Object Deleted`` event counts as one record.

    Raises NotAnS3Event for anything that is not an S3 notification or backfill message.
    """
    message = _json_object(body, "body")
    if message.get("Type") == "Notification" and "TopicArn" in message:  # SNS, raw delivery off
        message = _json_object(message.get("Message"), "the SNS message")
    if message.get("Event") == "s3:TestEvent":
        return []
    if "detail-type" in message:
        records: Any = _eventbridge_records(message)
    else:
        records = message.get("Records")
        if not isinstance(records, list) or not records:
            raise NotAnS3Event("body has no 'Records' list")
    return [source for record in records if (source := _parse_record(record)) is not None]


def _json_object(text: Any, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise NotAnS3Event(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise NotAnS3Event(f"{what} is not a JSON object")
    return value


def _eventbridge_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The notification record an EventBridge event from S3 stands for ([] for the event types
    other than ``Object Created`` and ``Object Deleted``, as for the other notification records).

    EventBridge names the fields differently and sends the key as it is, not URL-encoded
    (a ``:`` arrives as ``:``, where a notification has ``%3A``), so the key is encoded the
    way S3 encodes notification keys, exactly as a backfill record's is.
    """
    if event.get("source") != EVENTBRIDGE_SOURCE:
        raise NotAnS3Event(f"unexpected EventBridge source {event.get('source')!r}")
    name = _EVENTBRIDGE_NAMES.get(str(event.get("detail-type")))
    if name is None:
        return []
    try:
        detail = event["detail"]
        obj = detail["object"]
        return [
            {
                "eventSource": S3_EVENT_SOURCE,
                "eventName": f"{name}:{detail.get('reason', '')}",
                "eventTime": event["time"],
                "s3": {
                    "bucket": {"name": detail["bucket"]["name"]},
                    "object": {
                        "key": quote_plus(str(obj["key"]), safe="/"),
                        "size": obj.get("size", 0),
                        "eTag": obj.get("etag", ""),
                        "versionId": obj.get("version-id"),
                        "sequencer": obj.get("sequencer"),
                    },
                },
            }
        ]
    except (KeyError, TypeError) as exc:
        raise NotAnS3Event(f"malformed EventBridge S3 event: {exc!r}") from exc


def _parse_record(record: Any) -> SourceObject | None:
    if not isinstance(record, dict):
        raise NotAnS3Event("record is not an object")
    event_source = record.get("eventSource")
    if event_source not in (S3_EVENT_SOURCE, BACKFILL_EVENT_SOURCE):
        raise NotAnS3Event(f"unexpected eventSource {event_source!r}")
    name = str(record.get("eventName", ""))
    removed = name.startswith(REMOVED_PREFIX)
    if not removed and not name.startswith(CREATED_PREFIX):
        return None
    try:
        s3 = record["s3"]
        obj = s3["object"]
        return SourceObject(
            bucket=str(s3["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            size=int(obj.get("size", 0)),
            etag=str(obj.get("eTag", "")).strip('"'),
            event_time=_normalise_time(str(record["eventTime"])),
            version_id=obj.get("versionId") or None,
            sequencer=obj.get("sequencer") or None,
            removed=removed,
            force=event_source == BACKFILL_EVENT_SOURCE and name == REPROCESS_EVENT_NAME,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAnS3Event(f"malformed S3 record: {exc!r}") from exc


def _normalise_time(text: str) -> str:
    """ISO-8601 UTC with milliseconds, so that times compare as strings."""
    return iso_ms(datetime.fromisoformat(text))


def iso_ms(moment: datetime) -> str:
    if moment.tzinfo is None:  # S3 always sends UTC; never read a naive time as local
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backfill_record(
    bucket: str,
    key: str,
    size: int,
    etag: str,
    last_modified: datetime,
    event_name: str = BACKFILL_EVENT_NAME,
) -> dict[str, Any]:
    """One S3-notification-shaped record for an existing object (the backfill contract);
    ``event_name`` is ``REPROCESS_EVENT_NAME`` to render even an up-to-date image again."""
    return {
        "eventVersion": "2.1",
        "eventSource": BACKFILL_EVENT_SOURCE,
        "eventTime": iso_ms(last_modified),
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"')},
        },
    }


def backfill_message(
    bucket: str,
    key: str,
    size: int,
    etag: str,
    last_modified: datetime,
    event_name: str = BACKFILL_EVENT_NAME,
) -> str:
    """A message body holding one backfill record."""
    record = backfill_record(bucket, key, size, etag, last_modified, event_name)
    return json.dumps({"Records": [record]}, separators=(",", ":"))
