"""The image record: the one definition of an item of the images table (DESIGN.md).

``to_item()`` gives the item exactly as the pipeline writes it and the HTTP API returns it, in
plain JSON values (``core.aws`` turns floats into DynamoDB's Decimals and back); ``from_item()``
reads one back. Numbers are kept as read, so an item's JSON is the same after a round trip.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A recorded image's status; str-valued, so the stored attribute is the plain name."""

    PROCESSED = "PROCESSED"
    FAILED = "FAILED"
    DELETED = "DELETED"  # the source was removed: no renditions, forgotten after ``expires_at``


class Stage(StrEnum):
    """The timed stages of ``timings_ms``, in pipeline order."""

    FETCH = "fetch"
    DECODE = "decode"
    RENDER = "render"
    ENCODE = "encode"
    STORE = "store"


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each :class:`Stage` (the engine times decode, render and encode)."""

    fetch: float
    decode: float
    render: float
    encode: float
    store: float

    @property
    def total_ms(self) -> float:
        return float(sum(float(ms) for ms in self.to_item().values()))

    def to_item(self) -> dict[str, float]:
        return {stage.value: getattr(self, stage.value) for stage in Stage}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> "Timings":
        return cls(**{stage.value: item[stage.value] for stage in Stage})


@dataclass(frozen=True)
class Rendition:
    """One stored output: its rendition name, output key, format, size and length in bytes."""

    name: str
    key: str
    format: str
    width: int
    height: int
    bytes: int

    def to_item(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> "Rendition":
        return cls(
            name=str(item["name"]),
            key=str(item["key"]),
            format=str(item["format"]),
            width=int(item["width"]),
            height=int(item["height"]),
            bytes=int(item["bytes"]),
        )


@dataclass(frozen=True)
class ImageRecord:
    """What the pipeline recorded for one source object, keyed by ``{bucket}/{key}``.

    ``detail`` belongs to FAILED records; ``format``, ``width``, ``height``, ``timings_ms`` and
    ``profile`` (``core.imaging.profile``) to PROCESSED ones; ``deleted_at`` and ``expires_at``
    (epoch seconds, the table's TTL attribute) to DELETED ones. Each is left out of the item
    when it is None. The defaults are for
    reading items that were not written by the pipeline (hand-made ones in tests and tools).
    """

    bucket: str
    key: str
    status: Status
    reason: str | None = None
    etag: str = ""
    size: int = 0
    version_id: str | None = None
    event_time: str = ""
    event_order: str = ""
    started_at: str = ""
    finished_at: str = ""
    attempts: int = 0
    renditions: tuple[Rendition, ...] = ()
    detail: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    timings_ms: Timings | None = None
    profile: str | None = None
    deleted_at: str | None = None
    expires_at: int | None = None
    placeholder: str | None = None  # PROCESSED: a ThumbHash, base64 (core.imaging.placeholder)
    color: str | None = None  # PROCESSED: the dominant colour, "#rrggbb"
    owner: str | None = None  # the uploader (core.tenancy), for keys that name one

    @property
    def image_id(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def output_keys(self) -> frozenset[str]:
        """The stored objects this record points at (renditions may share one)."""
        return frozenset(rendition.key for rendition in self.renditions)

    def is_processed(self, etag: str, profile: str | None = None) -> bool:
        """Whether this very version of the source (by ETag) was already processed, and with
        ``profile`` when one is given (a record without a profile predates profiles)."""
        same_profile = profile is None or self.profile == profile
        return self.status is Status.PROCESSED and self.etag == etag and same_profile

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "image_id": self.image_id,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "version_id": self.version_id,
            "event_time": self.event_time,
            "event_order": self.event_order,
            "started_at": self.started_at,
            "attempts": self.attempts,
            "renditions": [rendition.to_item() for rendition in self.renditions],
            "status": self.status.value,
            "reason": self.reason,
        }
        optional = {
            "detail": self.detail,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "timings_ms": self.timings_ms.to_item() if self.timings_ms is not None else None,
            "profile": self.profile,
            "deleted_at": self.deleted_at,
            "expires_at": self.expires_at,
            "placeholder": self.placeholder,
            "color": self.color,
            "owner": self.owner,
        }
        item.update((name, value) for name, value in optional.items() if value is not None)
        item["finished_at"] = self.finished_at
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> "ImageRecord":
        """The record of a table item (already converted from DynamoDB's types)."""
        # The partition key is "{bucket}/{key}", and bucket names hold no "/".
        bucket, _, key = str(item["image_id"]).partition("/")
        timings = item.get("timings_ms")
        return cls(
            bucket=str(item.get("bucket", bucket)),
            key=str(item.get("key", key)),
            status=Status(item["status"]),
            reason=item.get("reason"),
            etag=str(item.get("etag", "")),
            size=int(item.get("size", 0)),
            version_id=item.get("version_id"),
            event_time=str(item.get("event_time", "")),
            event_order=str(item.get("event_order", "")),
            started_at=str(item.get("started_at", "")),
            finished_at=str(item.get("finished_at", "")),
            attempts=int(item.get("attempts", 0)),
            renditions=tuple(Rendition.from_item(r) for r in item.get("renditions", ())),
            detail=item.get("detail"),
            format=item.get("format"),
            width=_optional_int(item.get("width")),
            height=_optional_int(item.get("height")),
            timings_ms=Timings.from_item(timings) if timings is not None else None,
            profile=item.get("profile"),
            deleted_at=item.get("deleted_at"),
            expires_at=_optional_int(item.get("expires_at")),
            placeholder=item.get("placeholder"),
            color=item.get("color"),
            owner=item.get("owner"),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
