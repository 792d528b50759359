"""The two interfaces the pipeline works over; ``core.aws`` implements them with boto3."""

from collections.abc import Mapping
from typing import Protocol

from core.catalog import ImageRecord


class Storage(Protocol):
    def get(self, bucket: str, key: str, etag: str, max_bytes: int) -> bytes:
        """The object's bytes if its ETag still matches; Skipped(stale|source_missing) if not,
        Rejected(access_denied) when this function may not read it."""

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: Mapping[str, str]
    ) -> None: ...


class Catalog(Protocol):
    def get(self, image_id: str) -> ImageRecord | None: ...

    def put(self, record: ImageRecord) -> bool:
        """Write ``record`` unless a newer event already wrote one; False when it was older."""
