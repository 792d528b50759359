"""The backfill message bodies, built fast from a template of the contract's own function."""

import re
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote_plus

from core.events import BACKFILL_EVENT_NAME, backfill_message, iso_ms

_SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_.~/-]*")  # quote_plus(key, safe="/") leaves these
_SAFE_ETAG: Final = re.compile(r"[A-Za-z0-9-]*")


class MessageBuilder:
    """``backfill_message`` for one bucket, compiled to a format string.

    The template is produced by ``core.events.backfill_message`` itself (with sentinel values),
    so the contract's shape lives in one place; ``build`` gives byte-identical bodies (tested),
    and falls back to ``backfill_message`` for anything the template does not cover.
    """

    _KEY = "IMGPIPEsentinelKEY"
    _ETAG = "IMGPIPEsentinelETAG"
    _SIZE = 987654321987654321
    _TIME = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)

    def __init__(self, bucket: str, event_name: str = BACKFILL_EVENT_NAME) -> None:
        self.bucket = bucket
        self.event_name = event_name
        template = backfill_message(
            bucket, self._KEY, self._SIZE, self._ETAG, self._TIME, event_name
        )
        slots = {self._KEY: "{0}", str(self._SIZE): "{1}", self._ETAG: "{2}"}
        slots[iso_ms(self._TIME)] = "{3}"
        self._format: str | None = None
        if all(template.count(s) == 1 for s in slots):
            text = template.replace("{", "{{").replace("}", "}}")
            for sentinel, slot in slots.items():
                text = text.replace(sentinel, slot)
            self._format = text
        self._last: tuple[datetime | None, str] = (None, "")

    def event_time(self, modified: datetime) -> str:
        """``iso_ms``, with shortcuts for a repeated time (keys without metadata all get the
        run's start) and for times already in UTC (inventory rows)."""
        last = self._last  # one tuple, swapped atomically: senders share the builder
        if modified is last[0]:
            return last[1]
        if modified.tzinfo is UTC:
            text = modified.isoformat(timespec="milliseconds")[:-6] + "Z"
        else:
            text = iso_ms(modified)
        self._last = (modified, text)
        return text

    def build(self, key: str, size: int, etag: str, modified: datetime) -> str:
        if self._format is None or not _SAFE_ETAG.fullmatch(etag.strip('"')):
            return backfill_message(self.bucket, key, size, etag, modified, self.event_name)
        etag = etag.strip('"')
        encoded = key if _SAFE_KEY.fullmatch(key) else quote_plus(key, safe="/")
        return self._format.format(encoded, int(size), etag, self.event_time(modified))
