"""The image record and its one DynamoDB reader: the item keeps its exact shape through the
record and through DynamoDB, and ``get_many`` reads any number of ids."""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from decimal import Decimal
from typing import Any

import boto3
import pytest
from aws_helpers import AWS_ENV
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from core.aws import DynamoCatalog, from_dynamo, images_catalog, to_dynamo
from core.catalog import ImageRecord, Rendition, Stage, Status, Timings
from core.errors import Transient
from infra.local.canned import canned_response

TABLE = "images"
PROCESSED = ImageRecord(
    bucket="raw",
    key="uploads/9f3c/cät+1.jpg",
    status=Status.PROCESSED,
    etag="0123abcd",
    size=48213,
    event_time="2024-05-01T12:00:00.000Z",
    event_order="2024-05-01T12:00:00.000Z#0000000000000000000000000000005F",
    started_at="2024-05-01T12:00:01.000Z",
    finished_at="2024-05-01T12:00:02.250Z",
    attempts=1,
    renditions=(Rendition("thumb", "thumb/uploads/9f3c/cät+1.jpg.webp", "webp", 200, 200, 5120),),
    format="jpeg",
    width=900,
    height=600,
    timings_ms=Timings(fetch=3.25, decode=12.0, render=4.5, encode=30.75, store=0.0),
)
FAILED = ImageRecord(
    bucket="raw",
    key="poison.jpg",
    status=Status.FAILED,
    reason="corrupt",
    detail="image file is truncated",
    etag="ffff",
    size=10,
    version_id="v2",
    event_time="2024-05-01T12:00:00.000Z",
    event_order="2024-05-01T12:00:00.000Z#",
    started_at="2024-05-01T12:00:01.000Z",
    finished_at="2024-05-01T12:00:01.500Z",
    attempts=3,
)


def test_the_item_is_the_table_contract() -> None:
    item = PROCESSED.to_item()
    assert item["image_id"] == "raw/uploads/9f3c/cät+1.jpg"
    assert (item["status"], item["reason"], item["version_id"]) == ("PROCESSED", None, None)
    assert type(item["status"]) is str, "stored as the plain name"
    assert item["renditions"] == [
        {"name": "thumb", "key": "thumb/uploads/9f3c/cät+1.jpg.webp", "format": "webp",
         "width": 200, "height": 200, "bytes": 5120}
    ]  # fmt: skip
    assert list(item["timings_ms"]) == ["fetch", "decode", "render", "encode", "store"]
    assert "detail" not in item
    failed = FAILED.to_item()
    assert (failed["status"], failed["reason"], failed["renditions"]) == ("FAILED", "corrupt", [])
    assert not {"format", "width", "height", "timings_ms"} & set(failed)


def test_the_stages_are_the_timings() -> None:
    assert [f.name for f in fields(Timings)] == [stage.value for stage in Stage]
    assert PROCESSED.timings_ms is not None and PROCESSED.timings_ms.total_ms == 50.5


@pytest.mark.parametrize("record", [PROCESSED, FAILED], ids=["processed", "failed"])
def test_an_item_round_trips_through_dynamodb_types_unchanged(record: ImageRecord) -> None:
    item = record.to_item()
    read = from_dynamo(to_dynamo(item))
    assert ImageRecord.from_item(read) == record
    # The API's JSON is the item as read back: the same bytes after one more round trip.
    again = ImageRecord.from_item(read).to_item()
    assert json.dumps(again, sort_keys=True) == json.dumps(read, sort_keys=True)


def test_an_item_not_written_by_the_pipeline_is_read_with_defaults() -> None:
    record = ImageRecord.from_item({"image_id": "raw/a/b.jpg", "status": "PROCESSED", "etag": "e"})
    assert (record.bucket, record.key, record.image_id) == ("raw", "a/b.jpg", "raw/a/b.jpg")
    assert record.is_processed("e") and not record.is_processed("other")
    assert (record.renditions, record.timings_ms, record.reason) == ((), None, None)


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        ImageRecord.from_item({"image_id": "raw/a.jpg", "status": "DONE"})


# ------------------------------------------------------------------------ DynamoCatalog (moto)


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoCatalog]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield images_catalog(TABLE)


def records(count: int) -> list[ImageRecord]:
    return [
        ImageRecord("raw", f"many/{i}.jpg", Status.FAILED, reason="empty", event_order=str(i))
        for i in range(count)
    ]


def test_what_put_writes_is_the_item_and_get_reads_it_back(catalog: DynamoCatalog) -> None:
    assert catalog.put(PROCESSED) and catalog.put(FAILED)
    # Read by a Table resource, the other way to read the table: the same item.
    table = boto3.resource("dynamodb").Table(TABLE)
    assert table.get_item(Key={"image_id": PROCESSED.image_id})["Item"] == json.loads(
        json.dumps(PROCESSED.to_item()), parse_float=Decimal
    )
    raw = catalog.client.get_item(TableName=TABLE, Key={"image_id": {"S": PROCESSED.image_id}})
    assert from_dynamo(raw["Item"]) == PROCESSED.to_item()
    assert catalog.get(PROCESSED.image_id) == PROCESSED
    assert catalog.get(FAILED.image_id) == FAILED
    assert catalog.get("raw/none.jpg") is None


def test_put_never_lets_an_older_event_win(catalog: DynamoCatalog) -> None:
    newer = FAILED
    older = ImageRecord(newer.bucket, newer.key, Status.PROCESSED, event_order="2000")
    assert catalog.put(newer)
    assert not catalog.put(older)
    assert catalog.get(newer.image_id) == newer


def test_get_many_reads_every_id_in_chunks_of_100(catalog: DynamoCatalog) -> None:
    written = records(250)
    for record in written:
        assert catalog.put(record)
    calls: list[int] = []
    catalog.client.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem",
        lambda params, **_: calls.append(len(params["RequestItems"][TABLE]["Keys"])),
    )
    wanted = [r.image_id for r in written] + ["raw/missing.jpg", written[0].image_id]
    found = catalog.get_many(wanted)
    assert found == {r.image_id: r for r in written}
    assert calls == [100, 100, 51]
    assert catalog.get_many([]) == {}


def test_get_many_retries_unprocessed_keys_with_consistent_reads(catalog: DynamoCatalog) -> None:
    written = records(3)
    for record in written:
        catalog.put(record)
    requests: list[dict[str, Any]] = []

    def first_call_unprocessed(request: Any, **_: Any) -> AWSResponse | None:
        asked = json.loads(request.body)["RequestItems"]
        requests.append(asked[TABLE])
        if len(requests) > 1:
            return None
        body = {"Responses": {TABLE: []}, "UnprocessedKeys": asked}
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        return canned_response(request.url, 200, json.dumps(body).encode(), headers)

    events = catalog.client.meta.events
    events.register_first("before-send.dynamodb.BatchGetItem", first_call_unprocessed)
    found = catalog.get_many(r.image_id for r in written)
    assert set(found) == {r.image_id for r in written}
    assert len(requests) == 2 and all(r["ConsistentRead"] for r in requests)


def test_get_many_gives_up_transient_when_keys_stay_unprocessed(
    catalog: DynamoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.put(FAILED)
    pauses: list[float] = []
    monkeypatch.setattr("core.aws.time.sleep", pauses.append)

    def always_unprocessed(request: Any, **_: Any) -> AWSResponse:
        body = {"Responses": {}, "UnprocessedKeys": json.loads(request.body)["RequestItems"]}
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        return canned_response(request.url, 200, json.dumps(body).encode(), headers)

    events = catalog.client.meta.events
    events.register_first("before-send.dynamodb.BatchGetItem", always_unprocessed)
    with pytest.raises(Transient, match="1 keys unprocessed"):
        catalog.get_many([FAILED.image_id])
    assert pauses == sorted(pauses) and len(pauses) == 7


def test_worker_threads_share_one_catalog(catalog: DynamoCatalog) -> None:
    """The catalog is built on the low-level client (thread-safe, unlike a Table resource):
    eight threads writing and reading through one instance each see their own records."""
    written = records(200)

    def put_then_get(record: ImageRecord) -> ImageRecord | None:
        assert catalog.put(record)
        return catalog.get(record.image_id)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(put_then_get, written)) == written
