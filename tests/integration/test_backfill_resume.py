"""Resume after a real interruption: the backfill runs as a separate process against a moto
server, is killed (SIGKILL) or interrupted (SIGINT) mid-run, and a rerun with the same
--state must leave no key out."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_helpers import drain_bodies, embedded_aws

from core.events import parse_body
from core.imaging import parse_renditions, rendering_profile
from infra.local.moto_server import EmbeddedAws

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"photos/{n // 50:02d}/IMG {n:04d}+ü.jpg" for n in range(250)]


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    """A strict embedded AWS; the backfill runs as its operator."""
    with embedded_aws() as embedded:
        yield embedded


def client(aws: EmbeddedAws, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=aws.endpoint,
        region_name=aws.region,
        aws_access_key_id=aws.operator.access_key_id,
        aws_secret_access_key=aws.operator.secret_access_key,
    )


def seed(aws: EmbeddedAws, name: str) -> str:
    s3, sqs = client(aws, "s3"), client(aws, "sqs")
    s3.create_bucket(Bucket=name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=name, Key=key, Body=b"x"), KEYS))
    return str(sqs.create_queue(QueueName=name)["QueueUrl"])


def start(aws: EmbeddedAws, bucket: str, queue_url: str, state: Path, *extra: str) -> Any:
    env = {**os.environ, **aws.client_env}
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    argv = [
        sys.executable, "-m", "infra.cli", "backfill", f"s3://{bucket}/photos/",
        "--queue-url", queue_url, "--state", str(state), "--page-size", "10",
        "--state-interval", "0.1", "--concurrency", "2", "--no-progress", "--json", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_progress(state: Path, sent: int, process: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if json.loads(state.read_text())["counts"]["sent"] >= sent:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the backfill made no progress")


def drain(aws: EmbeddedAws, queue_url: str) -> Counter[str]:
    bodies = drain_bodies(client(aws, "sqs"), queue_url)
    return Counter(source.key for body in bodies for source in parse_body(body))


def sender_processes(pid: int) -> list[int]:
    """The spawned sender processes of a backfill (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def wait_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"sender processes {pids} outlived the backfill"
        time.sleep(0.05)


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_interrupted_backfill_resumes_without_gaps(
    aws: EmbeddedAws, tmp_path: Path, how: signal.Signals, processes: int
) -> None:
    bucket = f"resume-{how.name.lower()}-{processes}"
    queue_url = seed(aws, bucket)
    state = tmp_path / "state.json"

    first = start(aws, bucket, queue_url, state, "--max-rate", "100", "--processes", str(processes))
    wait_for_progress(state, 60, first)
    senders = sender_processes(first.pid)
    assert len(senders) == processes - 1
    first.send_signal(how)
    out, err = first.communicate(timeout=30)
    wait_gone(senders)  # a killed backfill leaves no orphan sender behind
    saved = json.loads(state.read_text())
    assert not saved["complete"] and saved["position"]["continuation_token"]
    assert 60 <= saved["counts"]["sent"] < len(KEYS)
    if how == signal.SIGINT:  # a clean stop: in-flight requests finish, the state is saved
        assert first.returncode == 130, err
        summary = json.loads(out)
        assert summary["interrupted"] and not summary["complete"]
        assert summary["counts"] == saved["counts"]
    else:
        assert first.returncode == -signal.SIGKILL

    second = start(aws, bucket, queue_url, state, "--processes", str(processes))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert summary["complete"] and summary["resumed"]
    # Counts are committed with the position, so they stay exact across the interruption.
    assert summary["counts"]["listed"] == summary["counts"]["sent"] == len(KEYS)

    delivered = drain(aws, queue_url)
    assert set(delivered) == set(KEYS)  # the union covers every key: no gap
    duplicates = sum(delivered.values()) - len(KEYS)
    assert duplicates < 100, duplicates  # only what was in flight around the saved position


def test_a_sender_process_that_dies_stops_the_run_and_the_rerun_fills_the_gap(
    aws: EmbeddedAws, tmp_path: Path
) -> None:
    bucket = "resume-dead-sender"
    queue_url = seed(aws, bucket)
    state = tmp_path / "state.json"

    first = start(aws, bucket, queue_url, state, "--max-rate", "100", "--processes", "2")
    wait_for_progress(state, 60, first)
    (sender,) = sender_processes(first.pid)
    os.kill(sender, signal.SIGKILL)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 1, err
    summary = json.loads(out)
    assert "backfill-sender-1 ended with exit code -9" in summary["error"]
    assert not summary["complete"] and not json.loads(state.read_text())["complete"]

    second = start(aws, bucket, queue_url, state, "--processes", "2")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert json.loads(out)["complete"]
    assert set(drain(aws, queue_url)) == set(KEYS)  # what the dead sender held is resent


def test_sender_processes_head_and_skip_processed_like_one_process(
    aws: EmbeddedAws, tmp_path: Path
) -> None:
    """--from-file makes the senders HeadObject every key and --skip-processed makes them read
    the table: both happen in the spawned senders too, and the counts add up across them."""
    bucket = "multi-head-skip"
    queue_url = seed(aws, bucket)
    table = "multi-head-skip-images"
    dynamodb = client(aws, "dynamodb")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    etag = hashlib.md5(b"x").hexdigest()  # what seed() uploaded
    processed = KEYS[::5]
    profile = rendering_profile(parse_renditions("default"))  # what --renditions names below
    for key in processed:
        item = {"image_id": f"{bucket}/{key}", "status": "PROCESSED", "etag": etag,
                "profile": profile}  # fmt: skip
        dynamodb.put_item(TableName=table, Item={k: {"S": v} for k, v in item.items()})
    missing = [f"photos/gone/{n}.jpg" for n in range(5)]
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("".join(f"{key}\n" for key in [*KEYS, *missing]), encoding="utf-8")

    run = start(aws, bucket, queue_url, tmp_path / "state.json",
                "--from-file", str(keys_file), "--skip-processed", "--table", table,
                "--renditions", "default", "--processes", "2", "--max-rate", "150")  # fmt: skip
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    counts = json.loads(out)["counts"]
    assert counts["listed"] == len(KEYS) + len(missing) and counts["missing"] == len(missing)
    assert counts["skipped_processed"] == len(processed)
    assert counts["sent"] == len(KEYS) - len(processed) and counts["failed"] == 0
    delivered = drain(aws, queue_url)
    assert set(delivered) == set(KEYS) - set(processed)
