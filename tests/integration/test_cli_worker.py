"""`imgpipe worker --json` against a queue in the embedded moto server: the summary it prints
once stopped, by SIGTERM (a process manager) or SIGINT (Ctrl-C)."""

import json
import signal
import subprocess
import sys
import time

import boto3
import pytest
from aws_helpers import AWS_ENV, embedded_aws

from infra.local.accounting import Tracker
from infra.local.provision import provision
from loadtest.synthetic import photo_like_bytes


def queue_empty(queue_url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return all(attributes["Attributes"][name] == "0" for name in names)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_worker_json_summarises_what_it_acknowledged(
    monkeypatch: pytest.MonkeyPatch, stop: signal.Signals
) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with embedded_aws() as aws:
        stack = provision("cli")  # S3 queues its s3:TestEvent as the notification is set up
        variables = {**stack.env(), **AWS_ENV, **aws.client_env}
        env = {name: value for name, value in variables.items() if value is not None}
        worker = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "worker", "--queue-url", stack.queue_url,
             "--processes", "1", "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        tracker = Tracker(stack.raw_bucket, stack.table, stack.dlq_url)
        boto3.client("s3").put_object(
            Bucket=stack.raw_bucket, Key="cli/photo.jpg", Body=photo_like_bytes(400, 300)
        )
        tracker.sent("cli/photo.jpg")
        deadline = time.monotonic() + 90
        while (tracker.pending or not queue_empty(stack.queue_url)) and time.monotonic() < deadline:
            tracker.poll()
            time.sleep(0.3)
        worker.send_signal(stop)
        out, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0, errors
    assert "Traceback" not in errors and "finishing the batches in flight" in errors
    summary = json.loads(out)
    assert summary["acknowledged"] == 2, errors  # the s3:TestEvent and the photo
    assert {k: summary[k] for k in ("queue_url", "processes", "left_for_retry")} == {
        "queue_url": stack.queue_url,
        "processes": 1,
        "left_for_retry": 0,
    }
