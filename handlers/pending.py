"""``GET /images/{id}`` for an image that has no result yet: PENDING while its raw object
exists, so a client polling after an upload can tell "waiting" from "no such image".

Only keys under the upload prefix of the raw bucket are looked at: that is what the API
function's role may read (``s3:GetObject`` on ``uploads/*``, and ``s3:ListBucket`` on the
raw bucket so that S3 answers 404, not 403, for a missing key). Any other id without a
record is unknown.
"""

from typing import Any, Final

from core.aws import S3Storage
from core.events import SourceObject
from core.tenancy import UPLOAD_PREFIX

PENDING: Final = "PENDING"


def pending_item(storage: S3Storage, raw_bucket: str, image_id: str) -> dict[str, Any] | None:
    """``{"status": "PENDING", ...}`` when the raw object of ``image_id`` exists; None when
    the id names no object (the caller answers 404). A HeadObject, no download."""
    bucket, _, key = image_id.partition("/")
    if bucket != raw_bucket or not key.startswith(UPLOAD_PREFIX):
        return None
    head = storage.head(bucket, key)
    if head is None:
        return None
    source = SourceObject.from_head(bucket, key, head)
    return {
        "image_id": image_id,
        "bucket": bucket,
        "key": key,
        "status": PENDING,
        "etag": source.etag,
        "size": source.size,
        "uploaded_at": source.event_time,
    }
