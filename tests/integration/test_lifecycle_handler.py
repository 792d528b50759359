"""An image's life through the SQS handler, with the notifications moto's S3 really sends for
an upload, an overwrite and a delete (the template's ObjectCreated and ObjectRemoved
configurations): new keys on overwrite with the old ones gone, and DELETED with nothing left."""

import time

import boto3
from aws_helpers import context, delete_succeeded, drain_test_event, receive_event

import handlers.process
from core.catalog import Status
from core.settings import Settings
from infra.local.provision import Stack
from loadtest.synthetic import photo_like_bytes


def handle_all(stack: Stack) -> None:
    event = receive_event(stack)
    response = handlers.process.handler(event, context())
    assert response == {"batchItemFailures": []}
    delete_succeeded(stack, event, response)


def stored_keys(stack: Stack) -> set[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    return {o["Key"] for o in listed}


def record(stack: Stack, key: str) -> dict:
    found = handlers.process.runtime().catalog.get(f"{stack.raw_bucket}/{key}")
    assert found is not None
    return found.to_item()


def test_upload_overwrite_and_delete(stack: Stack) -> None:
    drain_test_event(stack)
    s3, key = boto3.client("s3"), "uploads/u1/life.jpg"
    s3.put_object(Bucket=stack.raw_bucket, Key=key, Body=photo_like_bytes(2400, 1600, seed=1))
    handle_all(stack)
    first = record(stack, key)
    first_keys = {r["key"] for r in first["renditions"]}
    assert first["status"] == Status.PROCESSED and len(first_keys) == 4
    assert first["profile"] == Settings.from_env().profile
    assert stored_keys(stack) == first_keys

    time.sleep(0.01)  # a later event time: moto sends no sequencer
    s3.put_object(Bucket=stack.raw_bucket, Key=key, Body=photo_like_bytes(2400, 1600, seed=2))
    handle_all(stack)
    second = record(stack, key)
    second_keys = {r["key"] for r in second["renditions"]}
    assert second["etag"] != first["etag"] and second_keys.isdisjoint(first_keys)
    assert stored_keys(stack) == second_keys, "the old version's renditions are gone"

    time.sleep(0.01)
    s3.delete_object(Bucket=stack.raw_bucket, Key=key)
    handle_all(stack)
    deleted = record(stack, key)
    assert (deleted["status"], deleted["renditions"]) == (Status.DELETED, [])
    assert deleted["deleted_at"] and deleted["expires_at"] > time.time() + 29 * 86_400
    assert stored_keys(stack) == set()


def test_the_table_forgets_tombstones_by_its_ttl(stack: Stack) -> None:
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=stack.table)
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
