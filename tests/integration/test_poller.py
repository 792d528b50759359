"""The event source mapping's decisions: what to delete and what to leave for a retry."""

import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from aws_helpers import AWS_ENV, embedded_aws

from infra.local.accounting import Tracker
from infra.local.provision import provision
from infra.worker.poller import invoke
from loadtest.synthetic import photo_like_bytes

EVENT = {"Records": [{"messageId": "a"}, {"messageId": "b"}]}


def test_partial_failures_are_left_on_the_queue() -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.get_remaining_time_in_millis() > 0
        return {"batchItemFailures": [{"itemIdentifier": "b"}]}

    assert invoke(handler, EVENT, 5) == {"b"}


@pytest.mark.parametrize(
    "response",
    [None, {"batchItemFailures": [{"id": "a"}]}, {"batchItemFailures": [{"itemIdentifier": "z"}]}],
)
def test_invalid_responses_fail_the_whole_batch(response: Any) -> None:
    assert invoke(lambda event, context: response, EVENT, 5) == {"a", "b"}


def test_a_raising_function_fails_the_whole_batch() -> None:
    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    assert invoke(handler, EVENT, 5) == {"a", "b"}


def test_worker_command_polls_any_queue_and_stops_on_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`imgpipe worker` against a queue it did not create (the EC2/ECS mode), with the
    credentials of its environment (the operator's here; a task role on ECS)."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with embedded_aws() as aws:
        stack = provision("ecs")
        variables = {**stack.env(), **AWS_ENV, **aws.client_env}  # no session token
        env = {name: value for name, value in variables.items() if value is not None}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.cli",
                "worker",
                "--queue-url",
                stack.queue_url,
                "--processes",
                "1",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        tracker = Tracker(stack.raw_bucket, stack.table, stack.dlq_url)
        boto3.client("s3").put_object(
            Bucket=stack.raw_bucket, Key="ecs/photo.jpg", Body=photo_like_bytes(400, 300)
        )
        tracker.sent("ecs/photo.jpg")
        deadline = time.monotonic() + 60
        while tracker.pending and time.monotonic() < deadline:
            tracker.poll()
            time.sleep(0.3)
        worker.terminate()
        _, errors = worker.communicate(timeout=60)
        assert worker.returncode == 0, errors
        assert "finishing the batches in flight" in errors
        assert tracker.items["ecs/photo.jpg"]["status"] == "PROCESSED"
