"""The HTTP API (API Gateway HTTP API, payload v2) on Powertools' event handler.

Routes: ``POST /uploads`` (a presigned POST), ``GET /images/{image_id+}`` (the table item with
rendition URLs) and ``GET /config``. ``POST /process`` is a function of its own
(``handlers.process_now``): this one imports nothing of the image engine and runs in little
memory. The caller is the one the authorizer established (``handlers.identity``): uploads go
under ``uploads/{owner}/{uuid}/{name}``, and an image is visible to its owner and to admins
only (``core.tenancy.may_read``).
"""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    NotFoundError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.settings import AuthSettings, Settings
from core.tenancy import may_read, upload_key
from handlers.http import json_body, new_app, with_urls
from handlers.identity import caller
from handlers.pending import pending_item
from handlers.runtime import Runtime, connect_from_env

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

logger = Logger(service="imgpipe")


@cache
def runtime() -> Runtime:
    """Built once per container."""
    return connect_from_env("raw_bucket", "table")


app = new_app("the API function")


@app.post("/uploads")
def create_upload() -> dict[str, Any]:
    body = json_body(app)
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
    key = upload_key(caller(app.current_event.raw_event, settings.auth.mode).subject, filename)
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
    identity = caller(app.current_event.raw_event, rt.settings.auth.mode)
    # API Gateway passes the matched id already decoded; decoding again would corrupt keys
    # that hold "%".
    image_id = app.current_event.path_parameters.get("image_id")
    if not image_id:
        raise NotFoundError("no image id in the path")
    record = rt.catalog.get(image_id)
    # Someone else's image is as unknown as a missing one: existence does not leak.
    if record is not None:
        if not may_read(identity, image_id, record.owner):
            raise NotFoundError(f"no image {image_id!r}")
        return with_urls(record.to_item(), rt)
    pending = pending_item(rt.storage, rt.settings.raw_bucket, image_id)
    if pending is None or not may_read(identity, image_id):
        raise NotFoundError(f"no image {image_id!r}")
    return pending


@app.get("/config")
def config() -> dict[str, Any]:
    settings = Settings.from_env()
    return {
        "maxBytes": settings.max_bytes,
        "maxPixels": settings.max_pixels,
        "contentTypes": list(CONTENT_TYPES),
        # One name per size: the responsive preset stores each name in three formats.
        "renditions": list(dict.fromkeys(spec.name for spec in settings.renditions)),
        "auth": sign_in_config(settings.auth),
    }


def sign_in_config(auth: AuthSettings) -> dict[str, str]:
    """How the page signs in: Cognito's endpoint, pool and client for cognito; only the mode
    otherwise (jwt and iam callers bring their own token or signature)."""
    if auth.mode != "cognito":
        return {"mode": auth.mode}
    return {"mode": auth.mode, "endpoint": auth.endpoint, "userPoolId": auth.user_pool_id,
            "clientId": auth.client_id}  # fmt: skip


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
