"""The HTTP API handler: presigned POST, image lookup, on-demand processing and errors."""

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from aws_helpers import AWS_ENV, context, receive_event
from moto.server import ThreadedMotoServer

import handlers.api
import handlers.process
from infra.local.apigw import http_api_event, response_parts
from infra.local.provision import Stack, provision
from loadtest.synthetic import photo_like_bytes

JPEG = photo_like_bytes(640, 480, seed=3)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def api_stack(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack on a real moto server, so presigned URLs are real HTTP endpoints."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    stack = provision("api")
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    handlers.api.runtime.cache_clear()
    handlers.process.runtime.cache_clear()
    yield stack
    handlers.api.runtime.cache_clear()
    handlers.process.runtime.cache_clear()


def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    event = http_api_event(method, path, raw, {"content-type": "application/json"})
    status, _, data = response_parts(handlers.api.handler(event, context()))
    return status, json.loads(data) if data else None


def test_presigned_post_uploads_and_the_object_is_processed(api_stack: Stack) -> None:
    status, upload = call(
        "POST",
        "/uploads",
        {"filename": "../../etc/Cät photo.JPG", "contentType": "image/jpeg", "size": len(JPEG)},
    )
    assert status == 200
    assert upload["key"].startswith("uploads/") and upload["key"].endswith("/Cat-photo.JPG")
    assert ".." not in upload["key"]
    posted = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("x.jpg", JPEG, "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code in (200, 201, 204), posted.text

    event = receive_event(api_stack, 10)
    bodies = [r["body"] for r in event["Records"] if "ObjectCreated" in r["body"]]
    assert len(bodies) == 1
    response = handlers.process.handler(event, context())
    assert response == {"batchItemFailures": []}

    status, item = call("GET", "/images/" + quote(upload["imageId"], safe=""))
    assert status == 200
    assert item["status"] == "PROCESSED" and item["key"] == upload["key"]
    for rendition in item["renditions"]:
        fetched = requests.get(rendition["url"], timeout=30)
        assert fetched.status_code == 200 and len(fetched.content) == rendition["bytes"]


def test_presigned_post_policy_carries_every_condition(api_stack: Stack) -> None:
    """moto does not enforce POST policies; S3 does, so the policy itself is checked."""
    before = time.time()
    status, upload = call(
        "POST", "/uploads", {"filename": "a.png", "contentType": "image/png", "size": 1234}
    )
    assert status == 200
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": upload["key"]} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"bucket": api_stack.raw_bucket} in conditions
    assert ["content-length-range", 1, 50 * 1024 * 1024] in conditions
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 < expires - before <= 300 + 5
    assert upload["fields"]["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON object"),
        ({"contentType": "image/png", "size": 10}, "filename"),
        ({"filename": "a.svg", "contentType": "image/svg+xml", "size": 10}, "contentType"),
        ({"filename": "a.png", "contentType": "image/png", "size": 0}, "size"),
        ({"filename": "a.png", "contentType": "image/png", "size": 60 * 1024 * 1024}, "size"),
    ],
)
def test_bad_upload_requests_get_400(api_stack: Stack, body: Any, field: str) -> None:
    status, error = call("POST", "/uploads", body)
    assert status == 400
    assert field in error["message"]


def test_unknown_image_is_404(api_stack: Stack) -> None:
    status, error = call("GET", "/images/" + quote(f"{api_stack.raw_bucket}/nope.jpg", safe=""))
    assert status == 404 and "nope.jpg" in error["message"]


def test_process_on_demand(api_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGPIPE_CDN_DOMAIN", "d111.cloudfront.net")
    handlers.api.runtime.cache_clear()
    key = "uploads/manual/ü b.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    status, item = call("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert status == 200
    assert item["status"] == "PROCESSED" and item["outcome"] == "PROCESSED"
    assert item["renditions"][0]["url"].startswith("https://d111.cloudfront.net/")
    status, again = call("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert (status, again["outcome"], again["outcomeReason"]) == (200, "SKIPPED", "duplicate")


def test_process_other_bucket_is_403_and_missing_is_404(api_stack: Stack) -> None:
    status, _ = call("POST", "/process", {"bucket": api_stack.output_bucket, "key": "x.jpg"})
    assert status == 403
    status, _ = call("POST", "/process", {"bucket": api_stack.raw_bucket, "key": "missing.jpg"})
    assert status == 404
    status, _ = call("POST", "/process", {"key": "x.jpg"})
    assert status == 400


def test_config_mirrors_the_server_limits(api_stack: Stack) -> None:
    status, config = call("GET", "/config")
    assert status == 200
    assert config["maxBytes"] == 50 * 1024 * 1024
    assert "image/heic" in config["contentTypes"]
    assert config["renditions"] == ["thumb", "mobile", "720p", "1080p"]
