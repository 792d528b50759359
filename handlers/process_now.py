"""``POST /process``: synchronous, on-demand processing of one raw object (API Gateway HTTP
API, payload v2). Its own function (ProcessNowFunction, only with OnDemandProcessing): it
runs the engine, so it has the process function's memory and the pipeline's grants, which
the API function does without. Admins only: it can process any key of the raw bucket."""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.errors import Rejected
from core.events import SourceObject
from core.pipeline import process_source
from core.tenancy import ADMIN_GROUP
from handlers.http import json_body, new_app, with_urls
from handlers.identity import caller
from handlers.runtime import Runtime, connect_from_env

FUNCTION = "the on-demand processing function"

logger = Logger(service="imgpipe")


@cache
def runtime() -> Runtime:
    """Built once per container; the settings processing needs are checked at each call."""
    return connect_from_env("raw_bucket", "table")


app = new_app(FUNCTION)


@app.post("/process")
def process_now() -> dict[str, Any]:
    rt = runtime()
    if not caller(app.current_event.raw_event, rt.settings.auth.mode).admin:
        raise ForbiddenError(f"only members of {ADMIN_GROUP} may process on demand")
    body = json_body(app)
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
    return SourceObject.from_head(bucket, key, head)


def _unreadable(bucket: str, key: str) -> ForbiddenError:
    return ForbiddenError(f"{FUNCTION} may not read s3://{bucket}/{key}")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
