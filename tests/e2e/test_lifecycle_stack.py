"""An image's whole life on the embedded stack, in a subprocess, with the workers running as
the template's process role (IAM enforced): upload, then PROCESSED; overwrite, then new keys
with the old ones gone from the bucket and from the CDN stand-in; delete, then DELETED with no
renditions left."""

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from aws_helpers import apply_client_env
from local_stack_helpers import RunningStack, imgpipe_up

from core.aws import images_catalog
from loadtest.synthetic import photo_like_bytes

KEY = "uploads/u1/life cycle+ü.jpg"


def item_when(stack: RunningStack, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The image's table item, once ``done`` holds for it (60 s at most)."""
    catalog = images_catalog(stack.info["table"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = catalog.get(f"{stack.raw_bucket}/{KEY}")
        if record is not None and done(item := record.to_item()):
            return item
        time.sleep(0.3)
    raise AssertionError(f"{KEY}: not there after 60 s: {record}")


def stored(stack: RunningStack) -> set[str]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.info["processed_bucket"]).get("Contents", [])
    return {o["Key"] for o in listed}


def stored_when(stack: RunningStack, expected: set[str]) -> set[str]:
    """The processed bucket's keys once they are ``expected`` (10 s at most): the clean-up of
    the old ones follows the write of the new item, so it may lag it a little."""
    deadline = time.monotonic() + 10
    while (keys := stored(stack)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return keys


def cdn_status(stack: RunningStack, key: str) -> int:
    return requests.get(f"{stack.url}/cdn/{quote(key, safe='/')}", timeout=10).status_code


def test_upload_overwrite_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    with imgpipe_up(["--workers", "1"]) as stack:
        apply_client_env(monkeypatch, {**stack.client_env(), "AWS_SESSION_TOKEN": None})
        s3, bucket = boto3.client("s3"), stack.raw_bucket

        first_etag = s3.put_object(
            Bucket=bucket, Key=KEY, Body=photo_like_bytes(2400, 1600, seed=1)
        )
        first = item_when(stack, lambda i: i["status"] == "PROCESSED")
        assert first["etag"] == first_etag["ETag"].strip('"')
        first_keys = {r["key"] for r in first["renditions"]}
        assert len(first_keys) == 4 and stored(stack) == first_keys  # put before the write
        assert all(cdn_status(stack, key) == 200 for key in first_keys)

        second_etag = s3.put_object(
            Bucket=bucket, Key=KEY, Body=photo_like_bytes(1600, 2400, seed=2)
        )
        etag = second_etag["ETag"].strip('"')
        second = item_when(stack, lambda i: i["status"] == "PROCESSED" and i["etag"] == etag)
        second_keys = {r["key"] for r in second["renditions"]}
        assert second_keys.isdisjoint(first_keys), "a new version gets new keys"
        assert all(f".{etag[:8]}-" in key for key in second_keys)
        assert stored_when(stack, second_keys) == second_keys, "the old ones are gone"
        assert all(cdn_status(stack, key) == 200 for key in second_keys)
        assert all(cdn_status(stack, key) != 200 for key in first_keys)

        s3.delete_object(Bucket=bucket, Key=KEY)
        deleted = item_when(stack, lambda i: i["status"] == "DELETED")
        assert deleted["renditions"] == [] and deleted["deleted_at"]
        assert deleted["expires_at"] > time.time() + 29 * 86_400
        assert stored_when(stack, set()) == set(), "no renditions left"
        assert all(cdn_status(stack, key) != 200 for key in second_keys)
