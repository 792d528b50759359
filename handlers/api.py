"""The HTTP API (API Gateway HTTP API, payload v2) on Powertools' event handler.

Routes: ``POST /uploads`` (a presigned POST), ``GET /images/{image_id+}`` (the table item with
rendition URLs), ``POST /process`` (synchronous, on-demand processing) and ``GET /config``.
CORS is API Gateway's (the template's CorsConfiguration): it ignores an integration's own
CORS headers, so the handler sends none.
"""

import re
import unicodedata
import uuid
from functools import cache
from typing import Any, NoReturn
from urllib.parse import quote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.errors import AccessDenied, Rejected
from core.events import SourceObject, iso_ms
from core.pipeline import process_source
from core.settings import Settings
from handlers.pending import pending_item
from handlers.responsive import with_auto_urls
from handlers.runtime import Runtime, connect

CONTENT_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/heic",
    "image/heif",
    "image/avif",
)
UPLOAD_EXPIRY_S = 300
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

logger = Logger(service="imgpipe")


@cache
def runtime() -> Runtime:
    """Built once per container. The output bucket is checked only by ``POST /process``."""
    settings = Settings.from_env()
    settings.require("raw_bucket", "table")
    return connect(settings)


app = APIGatewayHttpResolver()


def _access_denied(exc: AccessDenied) -> NoReturn:
    """IAM refused one of this function's calls: the caller hears 403, not a 500."""
    raise ForbiddenError(f"the API function was denied {exc}") from exc


app.exception_handler(AccessDenied)(_access_denied)  # registered by call: the decorator is untyped


def sanitise_filename(name: str) -> str:
    """A safe last path segment: no directories, no traversal, ASCII letters and digits."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE_FILENAME.sub("-", ascii_name).strip(".-")
    return cleaned[-120:] or "upload"


def _json_body() -> dict[str, Any]:
    try:
        body = app.current_event.json_body
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


@app.post("/uploads")
def create_upload() -> dict[str, Any]:
    body = _json_body()
    settings = runtime().settings
    filename, content_type, size = body.get("filename"), body.get("contentType"), body.get("size")
    if not isinstance(filename, str) or not filename.strip():
        raise BadRequestError("filename: required")
    if content_type not in CONTENT_TYPES:
        raise BadRequestError(f"contentType: must be one of {', '.join(CONTENT_TYPES)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequestError("size: must be a positive integer (bytes)")
    if size > settings.max_bytes:
        raise BadRequestError(f"size: {size} bytes exceeds the limit of {settings.max_bytes}")
    key = f"uploads/{uuid.uuid4().hex}/{sanitise_filename(filename)}"
    post = runtime().storage.presigned_post(
        settings.raw_bucket, key, content_type, size, UPLOAD_EXPIRY_S
    )
    return {
        "url": post["url"],
        "fields": post["fields"],
        "key": key,
        "imageId": f"{settings.raw_bucket}/{key}",
        "expiresIn": UPLOAD_EXPIRY_S,
    }


@app.get("/images/.+")  # the greedy /images/{image_id+}: ids are "{bucket}/{key}"
def get_image() -> dict[str, Any]:
    rt = runtime()
    # API Gateway passes the matched id already decoded; decoding again would corrupt keys
    # that hold "%".
    image_id = app.current_event.path_parameters.get("image_id")
    if not image_id:
        raise NotFoundError("no image id in the path")
    record = rt.catalog.get(image_id)
    if record is not None:
        return with_urls(record.to_item(), rt)
    pending = pending_item(rt.storage, rt.settings.raw_bucket, image_id)
    if pending is None:
        raise NotFoundError(f"no image {image_id!r}")
    return pending


@app.post("/process")
def process_now() -> dict[str, Any]:
    body = _json_body()
    rt = runtime()
    bucket, key = body.get("bucket"), body.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise BadRequestError("bucket and key: required strings")
    if bucket != rt.settings.raw_bucket:
        raise ForbiddenError("only the configured raw bucket can be processed")
    rt.settings.check_processing()
    source = _head_source(rt, bucket, key)
    outcome = process_source(source, rt.settings, rt.storage, rt.catalog)
    if outcome.reason == "access_denied":
        raise _unreadable(bucket, key)
    record = rt.catalog.get(source.image_id)
    item = record.to_item() if record else {}
    return with_urls({**item, "outcome": outcome.status, "outcomeReason": outcome.reason}, rt)


def _head_source(rt: Runtime, bucket: str, key: str) -> SourceObject:
    """The object as its event would describe it: 404 when missing, 403 when unreadable."""
    try:
        head = rt.storage.head(bucket, key)
    except Rejected as rejection:  # access_denied, the only verdict a HeadObject gives
        raise _unreadable(bucket, key) from rejection
    if head is None:
        raise NotFoundError(f"no object s3://{bucket}/{key}")
    return SourceObject(
        bucket=bucket,
        key=key,
        size=int(head["ContentLength"]),
        etag=str(head["ETag"]).strip('"'),
        event_time=iso_ms(head["LastModified"]),
        version_id=head.get("VersionId"),
    )


def _unreadable(bucket: str, key: str) -> ForbiddenError:
    return ForbiddenError(f"the API function may not read s3://{bucket}/{key}")


@app.get("/config")
def config() -> dict[str, Any]:
    settings = Settings.from_env()
    return {
        "maxBytes": settings.max_bytes,
        "maxPixels": settings.max_pixels,
        "contentTypes": list(CONTENT_TYPES),
        # One name per size: the responsive preset stores each name in three formats.
        "renditions": list(dict.fromkeys(spec.name for spec in settings.renditions)),
    }


def with_urls(item: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """Rendition URLs: the CloudFront domain when configured, presigned GETs otherwise. Keys
    are percent-encoded: ``+ % # ?`` and spaces are legal in keys, not in URL paths. Behind
    the CDN, names stored in AVIF, WebP and JPEG also get ``.auto`` URLs and a ``srcset``."""
    settings = rt.settings

    def cdn_url(key: str) -> str:
        return f"{settings.cdn_url}/{quote(key, safe='/')}"

    for rendition in item.get("renditions", []):
        if settings.cdn_domain:
            rendition["url"] = cdn_url(rendition["key"])
        else:
            rendition["url"] = rt.storage.presigned_get(settings.output_bucket, rendition["key"])
    # ".auto" is negotiated by the CDN's function: there is nothing to presign without one.
    return with_auto_urls(item, cdn_url) if settings.cdn_domain else item


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
