"""The boto3 adapters: the only module in ``core`` that talks to AWS.

Endpoints, region and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL``
points boto3 at the embedded moto server locally); no code path branches on "local".
"""

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.catalog import ImageRecord
from core.errors import AccessDenied, Rejected, Skipped, Transient
from core.ports import Deadline, DeadlineExceeded, Replaced

# Every attempt of a call gets at most this to connect, and to wait for each read; under a
# deadline, the read wait is cut to what the deadline leaves after the connect.
CONNECT_TIMEOUT_S: Final = 2.0
READ_TIMEOUT_S: Final = 30.0
BATCH_GET_KEYS: Final = 100  # BatchGetItem's limit per call
_BATCH_GET_ROUNDS: Final = 8  # calls per chunk while UnprocessedKeys remain (4.5 s of backoff)

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_STALE = frozenset({"PreconditionFailed", "412"})
# By code, not by status: S3's other 403s (``InvalidObjectState``, ``RequestTimeTooSkewed``,
# ``SignatureDoesNotMatch``) are no verdict on the object. A HEAD has no body, hence "403".
_DENIED = frozenset({"AccessDenied", "403", "AccessDeniedException"})


def client_config(pool_size: int) -> Config:
    """Clients are built once per container; one pooled connection per worker thread, with
    botocore's standard retry mode (backoff on throttling and 5xx) before we call it transient.
    ``AWS_MAX_ATTEMPTS`` still sets the number of attempts (botocore's default is 3)."""
    return Config(
        max_pool_connections=max(10, pool_size),
        retries={"mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )


# The deadline of the calls this thread is making. A context variable, because the clients are
# shared by the worker threads and each thread runs its own record: botocore's per-request
# ``read_timeout`` (the request context, botocore >= 1.44) does the rest without locks.
_call_deadline: ContextVar[Deadline | None] = ContextVar("imgpipe_call_deadline", default=None)


@contextmanager
def _within(deadline: Deadline | None) -> Iterator[None]:
    """Bound the calls (and streamed reads) made in this block by ``deadline``."""
    token = _call_deadline.set(deadline)
    try:
        yield
    finally:
        _call_deadline.reset(token)


def _bound_attempt(request: Any, **_: Any) -> None:
    """botocore's ``before-send`` hook, run before every attempt, retries included: no attempt
    starts unless it can connect and read before the deadline, so the attempts, their backoff
    and their timeouts together end in time (a retry's backoff may overrun by its sleep, at most
    a few seconds: the safety margin covers it)."""
    deadline = _call_deadline.get()
    if deadline is None:
        return
    budget = deadline.remaining_s() - CONNECT_TIMEOUT_S
    if budget <= 0:
        raise DeadlineExceeded(f"{request.method} {request.url}: no time left for an attempt")
    request.context["read_timeout"] = min(READ_TIMEOUT_S, budget)


def _bounded(client: Any) -> Any:
    client.meta.events.register("before-send", _bound_attempt)
    return client


# SigV4 for every S3 request, presigned POSTs and GETs included (botocore would otherwise
# presign with SigV2 in some regions, which newer buckets and SSE-KMS refuse), and regional
# virtual-hosted URLs (``bucket.s3.REGION.amazonaws.com``; us-east-1 too). An IP endpoint, such
# as the local moto server, gets path-style URLs from botocore by itself.
S3_SIGNING = Config(
    signature_version="s3v4",
    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _source_denied(bucket: str, key: str) -> Rejected:
    """A source this function may not read: no retry grants the permission."""
    return Rejected(
        "access_denied",
        f"the process role may not read s3://{bucket}/{key}: "
        "grant it with the template parameter BackfillSourceBuckets",
    )


def _transient(what: str, exc: ClientError) -> Transient:
    """A failed call on the pipeline's own resources is retried; AccessDenied marks IAM's."""
    code = error_code(exc)
    return (AccessDenied if code in _DENIED else Transient)(f"{what}: {code}")


class S3Storage:
    """Storage over S3: conditional GETs of sources, immutable PUTs of renditions."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(
        self, bucket: str, key: str, etag: str, max_bytes: int, deadline: Deadline | None = None
    ) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            kwargs["IfMatch"] = f'"{etag}"'
        try:
            with _within(deadline):  # the body is streamed: its reads are bounded too
                response = self.client.get_object(**kwargs)
                length = int(response.get("ContentLength", 0))
                if length > max_bytes:
                    response["Body"].close()
                    raise Rejected("too_large", f"object is {length} bytes, limit {max_bytes}")
                return bytes(response["Body"].read())
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING:
                raise Skipped("source_missing", f"s3://{bucket}/{key}") from exc
            if code in _STALE:
                raise Skipped("stale", f"s3://{bucket}/{key} no longer has ETag {etag}") from exc
            if code in _DENIED:
                raise _source_denied(bucket, key) from exc
            raise Transient(f"GetObject s3://{bucket}/{key}: {code}") from exc
        except BotoCoreError as exc:
            raise Transient(f"GetObject s3://{bucket}/{key}: {exc}") from exc

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        deadline: Deadline | None = None,
    ) -> None:
        try:
            with _within(deadline):
                self.client.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    CacheControl="public, max-age=31536000, immutable",
                    # S3 user metadata must be ASCII: keys are percent-encoded.
                    Metadata={name: quote(value, safe="/") for name, value in metadata.items()},
                )
        except ClientError as exc:
            raise _transient(f"PutObject s3://{bucket}/{key}", exc) from exc
        except BotoCoreError as exc:
            raise Transient(f"PutObject s3://{bucket}/{key}: {exc}") from exc

    def delete(self, bucket: str, keys: Iterable[str], deadline: Deadline | None = None) -> None:
        """One DeleteObject per key (an image has a handful): S3 answers 204 for a missing
        key too, so a retried cleanup is harmless."""
        for key in sorted(set(keys)):
            try:
                with _within(deadline):
                    self.client.delete_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                raise _transient(f"DeleteObject s3://{bucket}/{key}", exc) from exc
            except BotoCoreError as exc:
                raise Transient(f"DeleteObject s3://{bucket}/{key}: {exc}") from exc

    def head(self, bucket: str, key: str) -> Mapping[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            if error_code(exc) in _DENIED:
                raise _source_denied(bucket, key) from exc
            raise Transient(f"HeadObject s3://{bucket}/{key}: {error_code(exc)}") from exc

    def presigned_post(
        self,
        bucket: str,
        key: str,
        content_type: str,
        size: int,
        expires_in: int,
    ) -> dict[str, Any]:
        """A browser upload of exactly this key, type and size (in bytes): S3 refuses any
        other with ``EntityTooLarge``/``EntityTooSmall`` or a failed policy condition."""
        conditions: Sequence[Any] = [
            {"bucket": bucket},
            {"key": key},
            {"Content-Type": content_type},
            ["content-length-range", size, size],
        ]
        return dict(
            self.client.generate_presigned_post(
                Bucket=bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=list(conditions),
                ExpiresIn=expires_in,
            )
        )

    def presigned_get(self, bucket: str, key: str, expires_in: int = 3600) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )


class DynamoCatalog:
    """The images table, its one reader and writer: consistent reads, order-conditional writes.

    Over the low-level client, which boto3 documents as thread-safe (resources are not), so
    the worker threads share one.
    """

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, image_id: str, deadline: Deadline | None = None) -> ImageRecord | None:
        try:
            with _within(deadline):
                response = self.client.get_item(
                    TableName=self.table, Key=_key(image_id), ConsistentRead=True
                )
        except ClientError as exc:
            raise _transient(f"GetItem {image_id}", exc) from exc
        except BotoCoreError as exc:
            raise Transient(f"GetItem {image_id}: {exc}") from exc
        item = response.get("Item")
        return ImageRecord.from_item(from_dynamo(item)) if item else None

    def get_many(self, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        """The records of those ``image_ids`` that have one, by id: consistent BatchGetItems of
        up to 100 keys, each retrying its UnprocessedKeys (Transient if they never clear)."""
        ids = list(dict.fromkeys(image_ids))
        records: dict[str, ImageRecord] = {}
        for start in range(0, len(ids), BATCH_GET_KEYS):
            for item in self._batch_get(ids[start : start + BATCH_GET_KEYS]):
                record = ImageRecord.from_item(from_dynamo(item))
                records[record.image_id] = record
        return records

    def _batch_get(self, image_ids: list[str]) -> list[Mapping[str, Any]]:
        name = self.table
        keys = [_key(image_id) for image_id in image_ids]
        request: dict[str, Any] = {name: {"Keys": keys, "ConsistentRead": True}}
        items: list[Mapping[str, Any]] = []
        for attempt in range(_BATCH_GET_ROUNDS):
            if attempt:
                time.sleep(min(1.0, 0.05 * 2**attempt))  # DynamoDB asks for backoff here
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except ClientError as exc:
                raise _transient(f"BatchGetItem {name}", exc) from exc
            except BotoCoreError as exc:
                raise Transient(f"BatchGetItem {name}: {exc}") from exc
            items.extend(response.get("Responses", {}).get(name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
        left = len(request[name]["Keys"])
        raise Transient(
            f"BatchGetItem {name}: {left} keys unprocessed after {_BATCH_GET_ROUNDS} calls"
        )

    def put(self, record: ImageRecord, deadline: Deadline | None = None) -> Replaced | None:
        """The conditional write (an older event never overwrites a newer one), returning the
        item it replaced (``ReturnValues=ALL_OLD``: read in the same atomic operation)."""
        try:
            with _within(deadline):
                response = self.client.put_item(
                    TableName=self.table,
                    Item=to_dynamo(record.to_item()),
                    ConditionExpression="attribute_not_exists(image_id) OR event_order <= :order",
                    ExpressionAttributeValues={":order": {"S": record.event_order}},
                    ReturnValues="ALL_OLD",
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise _transient(f"PutItem {record.image_id}", exc) from exc
        except BotoCoreError as exc:
            raise Transient(f"PutItem {record.image_id}: {exc}") from exc
        old = response.get("Attributes")
        return Replaced(ImageRecord.from_item(from_dynamo(old)) if old else None)


_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()


def _key(image_id: str) -> dict[str, Any]:
    return {"image_id": {"S": image_id}}


def to_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's typed form (``{"S": ...}``); floats go as Decimal, the only
    number type boto3's serializer takes."""
    return {name: _SERIALIZER.serialize(_decimals(value)) for name, value in item.items()}


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """A typed item back to plain JSON values: Decimals become int or float."""
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in item.items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def s3_client(pool_size: int = 10, session: Any = None, region: str | None = None) -> Any:
    """An S3 client signed with SigV4 and addressed per :data:`S3_SIGNING`, its calls bounded
    by the caller's deadline (see ``_within``)."""
    factory = session or boto3
    config = client_config(pool_size).merge(S3_SIGNING)
    return _bounded(factory.client("s3", region_name=region, config=config))


def dynamodb_client(pool_size: int = 10, session: Any = None, region: str | None = None) -> Any:
    """A low-level DynamoDB client, its calls bounded by the caller's deadline."""
    factory = session or boto3
    return _bounded(factory.client("dynamodb", region_name=region, config=client_config(pool_size)))


def images_catalog(
    table: str, pool_size: int = 10, session: Any = None, region: str | None = None
) -> DynamoCatalog:
    return DynamoCatalog(dynamodb_client(pool_size, session, region), table)
