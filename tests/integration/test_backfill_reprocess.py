"""A preset change, then `imgpipe backfill --reprocess`: only the images rendered with another
profile are sent and rendered again, and their old renditions are deleted once the new ones
are recorded. Against moto, through the real command and the real SQS batch handler."""

import argparse
import json
from typing import Any

import boto3
import pytest
from aws_helpers import context, delete_succeeded, receive_event

import handlers.process
from core.events import REPROCESS_EVENT_NAME, parse_body
from infra.commands import backfill as command
from infra.local.provision import Stack
from loadtest.synthetic import photo_like_bytes

KEYS = ("a.jpg", "b.jpg", "c.jpg")


@pytest.fixture
def quiet(stack: Stack) -> Stack:
    """The stack without the raw bucket's notification: only backfill writes to the queue."""
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=stack.raw_bucket, NotificationConfiguration={}
    )
    boto3.client("sqs").purge_queue(QueueUrl=stack.queue_url)
    for seed, key in enumerate(KEYS):
        body = photo_like_bytes(320, 240, seed=seed)
        boto3.client("s3").put_object(Bucket=stack.raw_bucket, Key=key, Body=body)
    return stack


def backfill(
    capsys: pytest.CaptureFixture[str], stack: Stack, *argv: str, prefix: str = ""
) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    target = f"s3://{stack.raw_bucket}/{prefix}"
    base = [target, "--queue-url", stack.queue_url, "--table", stack.table]
    args = parser.parse_args([*base, *argv, "--no-progress", "--json", "--processes", "1"])
    capsys.readouterr()
    assert command.run(args) == 0
    return dict(json.loads(capsys.readouterr().out))


def handle_queue(stack: Stack) -> list[str]:
    """Run the handler on everything queued; the keys it was sent."""
    event = receive_event(stack, 10)
    response = handlers.process.handler(event, context())
    assert response == {"batchItemFailures": []}
    delete_succeeded(stack, event, response)
    return sorted(s.key for r in event["Records"] for s in parse_body(r["body"]))


def use_preset(monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    """Deploy another IMGPIPE_RENDITIONS: the function and the command both read it."""
    monkeypatch.setenv("IMGPIPE_RENDITIONS", preset)
    handlers.process.runtime.cache_clear()


def records(stack: Stack) -> dict[str, Any]:
    catalog = handlers.process.runtime().catalog
    found = catalog.get_many(f"{stack.raw_bucket}/{key}" for key in KEYS)
    return {record.key: record for record in found.values()}


def stored_keys(stack: Stack) -> set[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    return {o["Key"] for o in listed}


def test_after_a_preset_change_only_outdated_images_are_rendered_again(
    quiet: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_preset(monkeypatch, "default")
    backfill(capsys, quiet)
    assert handle_queue(quiet) == list(KEYS)
    before = records(quiet)
    assert len({r.profile for r in before.values()}) == 1

    use_preset(monkeypatch, "thumbs")
    new_profile = handlers.process.runtime().settings.profile
    # c.jpg is already rendered with the new preset (a backfill of just that key).
    backfill(capsys, quiet, prefix="c.jpg")
    assert handle_queue(quiet) == ["c.jpg"]

    summary = backfill(capsys, quiet, "--reprocess", "outdated")
    assert (summary["counts"]["sent"], summary["counts"]["skipped_processed"]) == (2, 1)
    assert handle_queue(quiet) == ["a.jpg", "b.jpg"], "only the outdated ones were sent"
    after = records(quiet)
    assert {r.profile for r in after.values()} == {new_profile}
    for key in ("a.jpg", "b.jpg"):
        assert [r.name for r in after[key].renditions] == ["thumb"]
        assert after[key].output_keys.isdisjoint(before[key].output_keys)
    expected = set().union(*(r.output_keys for r in after.values()))
    assert stored_keys(quiet) == expected, "the old renditions are deleted"

    # Everything is now up to date: --skip-processed sends nothing, --reprocess all everything,
    # and the handler renders those again instead of skipping them as duplicates.
    assert backfill(capsys, quiet, "--skip-processed")["counts"]["sent"] == 0
    assert backfill(capsys, quiet, "--reprocess", "all")["counts"]["sent"] == len(KEYS)
    event = receive_event(quiet, 10)
    names = {json.loads(r["body"])["Records"][0]["eventName"] for r in event["Records"]}
    assert names == {REPROCESS_EVENT_NAME}
    response = handlers.process.handler(event, context())
    assert response == {"batchItemFailures": []}
    again = records(quiet)
    assert all(again[k].finished_at > after[k].finished_at for k in KEYS)
    assert stored_keys(quiet) == expected, "same version and profile: the same keys"


def test_reprocess_and_skip_processed_together_are_refused(
    quiet: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(
        [f"s3://{quiet.raw_bucket}", "--queue-url", quiet.queue_url, "--table", quiet.table,
         "--skip-processed", "--reprocess", "outdated", "--no-progress", "--processes", "1"]
    )  # fmt: skip
    assert command.run(args) == 2
    assert "contradict" in capsys.readouterr().err
