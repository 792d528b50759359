"""Deadlines inside a record, against an endpoint that stalls: a local socket that accepts
connections and never answers. The invocation returns before its timeout, with the record in
``batchItemFailures``, however long botocore's own timeouts and retries would have waited
(30 s reads, 3 attempts here: about 90 s)."""

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from aws_helpers import AWS_ENV, apply_client_env, context
from moto import mock_aws

import handlers.process
from core.events import backfill_message
from infra.worker.lambda_event import sqs_event

TIMEOUT_S = 4.0  # the invocation's remaining time
MARGIN_MS = "1000"  # IMGPIPE_SAFETY_MARGIN_MS: each record must be done 1 s before the end
ENV = {
    **AWS_ENV,
    "AWS_MAX_ATTEMPTS": "3",  # botocore's default: the retries must be bounded too
    "IMGPIPE_RAW_BUCKET": "raw",
    "IMGPIPE_OUTPUT_BUCKET": "out",
    "IMGPIPE_TABLE": "images",
    "IMGPIPE_SAFETY_MARGIN_MS": MARGIN_MS,
    "AWS_ENDPOINT_URL": None,
}


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """An HTTP endpoint that never answers: the kernel completes each TCP handshake into the
    listen backlog, and nothing ever reads the request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def invoke_one(body: str) -> tuple[str, dict, float]:
    event = sqs_event(
        [{"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": body}],
        "arn:aws:sqs:us-east-1:123456789012:jobs",
        "us-east-1",
    )
    started = time.monotonic()
    response = handlers.process.handler(event, context(TIMEOUT_S))
    return event["Records"][0]["messageId"], response, time.monotonic() - started


def body() -> str:
    return backfill_message("raw", "slow/cat.jpg", 1234, "etag1", datetime.now(UTC))


@pytest.mark.parametrize("service", ["dynamodb", "s3"])
def test_a_stalled_endpoint_fails_the_record_before_the_invocation_times_out(
    monkeypatch: pytest.MonkeyPatch, stalled_url: str, service: str
) -> None:
    """DynamoDB stalls on the duplicate lookup, or S3 on the fetch (DynamoDB answering, from
    moto in-process); either way the record's calls end by its deadline."""
    apply_client_env(monkeypatch, ENV)
    with mock_aws():
        table = boto3.client("dynamodb")
        table.create_table(
            TableName="images",
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        apply_client_env(monkeypatch, {f"AWS_ENDPOINT_URL_{service.upper()}": stalled_url})
        handlers.process.runtime.cache_clear()
        try:
            message_id, response, took = invoke_one(body())
        finally:
            handlers.process.runtime.cache_clear()
        if service == "s3":
            assert table.scan(TableName="images")["Items"] == []
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert took < TIMEOUT_S - 0.5, f"the invocation took {took:.1f} s of {TIMEOUT_S} s"


def test_a_record_with_time_for_nothing_is_not_started(
    monkeypatch: pytest.MonkeyPatch, stalled_url: str
) -> None:
    """Less time left than the margin: no call is even attempted."""
    apply_client_env(
        monkeypatch,
        {**ENV, "AWS_ENDPOINT_URL": stalled_url, "IMGPIPE_SAFETY_MARGIN_MS": "5000"},
    )
    handlers.process.runtime.cache_clear()
    sent: list[str] = []
    try:
        rt = handlers.process.runtime()
        for client in (rt.storage.client, rt.catalog.client):
            client.meta.events.register("before-send", lambda request, **_: sent.append(request))
        message_id, response, took = invoke_one(body())
    finally:
        handlers.process.runtime.cache_clear()
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert sent == [] and took < 1
