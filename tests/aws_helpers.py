"""Shared helpers for the moto-backed tests: a provisioned stack, real SQS events, and the
embedded server with this process acting as its operator."""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from infra.local.canned import s3_error
from infra.local.moto_server import EmbeddedAws
from infra.local.provision import Stack, provision
from infra.worker.lambda_event import LambdaContext, sqs_event

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "IMGPIPE_WORKERS": "2",
}


def apply_client_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str | None]) -> None:
    """Set (``None``: unset) these variables until ``monkeypatch`` undoes them, with a new
    boto3 default session: the old one keeps the credentials it found first."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@contextmanager
def embedded_aws(strict: bool = True) -> Iterator[EmbeddedAws]:
    """The embedded server (strict unless told otherwise), with this process acting as its
    operator until the block ends; usable from fixtures of any scope."""
    with EmbeddedAws(strict=strict) as aws, pytest.MonkeyPatch.context() as monkeypatch:
        apply_client_env(monkeypatch, aws.client_env)
        yield aws


@pytest.fixture(name="stack")
def stack_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A provisioned stack in moto, with the handler's settings pointed at it."""
    import handlers.process

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        provisioned = provision("test")
        for name, value in provisioned.env().items():
            monkeypatch.setenv(name, value)
        handlers.process.runtime.cache_clear()
        yield provisioned
        handlers.process.runtime.cache_clear()


def receive_event(stack: Stack, wanted: int = 10) -> dict[str, Any]:
    """Receive up to ``wanted`` messages and wrap them exactly as Lambda's ESM does."""
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while len(messages) < wanted:
        batch = sqs.receive_message(
            QueueUrl=stack.queue_url,
            MaxNumberOfMessages=min(10, wanted - len(messages)),
            WaitTimeSeconds=0,  # the queue long-polls by default (20 s), as in the template
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
    return sqs_event(messages, stack.queue_arn, stack.region)


def drain_test_event(stack: Stack) -> None:
    """Consume the s3:TestEvent that S3 (and moto) sends when the notification is set up."""
    import handlers.process

    event = receive_event(stack, 1)
    assert "s3:TestEvent" in event["Records"][0]["body"]
    assert handlers.process.handler(event, context()) == {"batchItemFailures": []}
    delete_succeeded(stack, event, {"batchItemFailures": []})


def delete_succeeded(stack: Stack, event: dict[str, Any], response: dict[str, Any]) -> None:
    """Delete what the function acknowledged, as the event source mapping does."""
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    sqs = boto3.client("sqs")
    for record in event["Records"]:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=record["receiptHandle"])


def role_env(role_arn: str) -> dict[str, str]:
    """Credentials of a session of ``role_arn`` (a function's role), from the operator."""
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="test")[
        "Credentials"
    ]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def context(timeout_s: float = 60) -> LambdaContext:
    return LambdaContext(timeout_s)


def error_response(code: str, status: int) -> Callable[..., AWSResponse]:
    """A botocore ``before-send`` hook that answers with an S3-style error."""

    def hook(request: Any, **_: Any) -> AWSResponse:
        return s3_error(request.url, code, status)

    return hook


def drain_bodies(sqs: Any, queue_url: str) -> list[str]:
    """Receive and delete everything on the queue; the message bodies."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        bodies.extend(m["Body"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
