"""One row per key a load test sent: its source, when it was sent, and what the table says
happened to it (times relative to the run's start, latencies, stage timings)."""

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.catalog import Status
from loadtest.calibration import ENGINE_STAGES
from loadtest.cost import top_level_item_bytes
from loadtest.run import RunData, Sent

SENT_FIELDS = (
    "seq",
    "key",
    "warmup",
    "size_class",
    "format",
    "source_bytes",
    "source_mp",
    "sent_at",
    "send_call_ms",
    "isolated_engine_ms",
    "status",
)


@dataclass(frozen=True)
class ImageRow:
    seq: int
    key: str
    warmup: bool
    size_class: str
    format: str
    source_bytes: int
    source_mp: float
    sent_at: float  # seconds since the start of the run
    send_call_ms: float
    isolated_engine_ms: float | None
    status: str  # PROCESSED or FAILED (from the table), DLQ or UNACCOUNTED
    # From the table item: for PROCESSED and FAILED only.
    reason: str | None = None
    attempts: int | None = None
    event_time: str | None = None
    started_at_iso: str | None = None
    finished_at_iso: str | None = None
    finished_at: float | None = None  # seconds since the start of the run
    e2e_ms: float | None = None  # sent -> finished_at
    queue_wait_ms: float | None = None  # eventTime -> started_at
    processing_ms: float | None = None  # started_at -> finished_at
    timings_ms: dict[str, float] = field(default_factory=dict)
    engine_ms: float | None = None  # decode + render + encode
    renditions: int = 0
    puts: int = 0  # distinct rendition keys (identical outputs are stored once)
    rendition_bytes: int = 0
    item_bytes: int = 0

    @property
    def recorded(self) -> bool:
        return self.status in tuple(Status)

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json holds it: a key never recorded has no item figures."""
        row = asdict(self)
        return row if self.recorded else {name: row[name] for name in SENT_FIELDS}


def image_rows(data: RunData) -> list[ImageRow]:
    return [
        _row(data, sent) for _, sent in sorted(data.sent.items(), key=lambda kv: kv[1].item.seq)
    ]


def _row(data: RunData, sent: Sent) -> ImageRow:
    key, source = sent.item.key, sent.item.source
    sent_fields: dict[str, Any] = {
        "seq": sent.item.seq,
        "key": key,
        "warmup": sent.item.warmup,
        "size_class": source.size_class,
        "format": source.fmt,
        "source_bytes": source.nbytes,
        "source_mp": round(source.width * source.height / 1e6, 3),
        "sent_at": round(sent.sent_at - data.started_at, 4),
        "send_call_ms": sent.call_ms,
        "isolated_engine_ms": source.engine_ms,
    }
    item = data.items.get(key)
    if item is None:
        return ImageRow(**sent_fields, status="DLQ" if key in data.dead else "UNACCOUNTED")
    event, started, finished = (
        _epoch(item.get("event_time")),
        _epoch(item.get("started_at")),
        _epoch(item.get("finished_at")),
    )
    timings = {k: float(v) for k, v in (item.get("timings_ms") or {}).items()}
    renditions = item.get("renditions") or []
    return ImageRow(
        **sent_fields,
        status=item["status"],
        reason=item.get("reason"),
        attempts=item.get("attempts"),
        event_time=item.get("event_time"),
        started_at_iso=item.get("started_at"),
        finished_at_iso=item.get("finished_at"),
        finished_at=round(finished - data.started_at, 4) if finished else None,
        e2e_ms=_ms(finished, sent.sent_at),
        queue_wait_ms=_ms(started, event),
        processing_ms=_ms(finished, started),
        timings_ms=timings,
        engine_ms=round(sum(timings.get(s, 0.0) for s in ENGINE_STAGES), 2) if timings else None,
        renditions=len(renditions),
        puts=len({r.get("key") for r in renditions}),
        rendition_bytes=sum(int(r.get("bytes", 0)) for r in renditions),
        item_bytes=top_level_item_bytes(item),
    )


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000, 1)
