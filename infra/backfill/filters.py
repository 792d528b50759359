"""Which keys a backfill sends: prefix, suffixes, a modification window and a size range."""

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from infra.backfill.work import Item

DEFAULT_SUFFIXES: Final = (
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".heic", ".heif", ".avif",
)  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """Which keys to send. Half-open time window: ``after <= modified < before``."""

    prefix: str = ""
    suffixes: tuple[str, ...] | None = DEFAULT_SUFFIXES
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    min_size: int | None = None
    max_size: int | None = None

    @property
    def needs_size(self) -> bool:
        return self.min_size is not None or self.max_size is not None

    @property
    def needs_time(self) -> bool:
        return self.modified_after is not None or self.modified_before is not None

    def key_ok(self, key: str) -> bool:
        if self.prefix and not key.startswith(self.prefix):
            return False
        return self.suffixes is None or key.lower().endswith(self.suffixes)

    def metadata_ok(self, size: int | None, modified: datetime | None) -> bool:
        """False only when known metadata is outside the bounds (unknown passes)."""
        if size is not None:
            if self.min_size is not None and size < self.min_size:
                return False
            if self.max_size is not None and size > self.max_size:
                return False
        if modified is not None:
            if self.modified_after is not None and modified < self.modified_after:
                return False
            if self.modified_before is not None and modified >= self.modified_before:
                return False
        return True

    def accepts(self, item: Item) -> bool:
        return self.key_ok(item.key) and self.metadata_ok(item.size, item.modified)
