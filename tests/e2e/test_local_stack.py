"""End to end on the embedded stack, in a subprocess: notifications, the poller, retries,
the DLQ, and a worker killed mid-batch."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from aws_helpers import apply_client_env
from local_stack_helpers import ROOT, RunningStack, imgpipe_up
from PIL import Image

from infra.local.accounting import Tracker
from loadtest.synthetic import photo_like_bytes


def use(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Act as this stack's operator."""
    apply_client_env(monkeypatch, {**stack.client_env(), "AWS_SESSION_TOKEN": None})


def wait_for(tracker: Tracker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while tracker.pending and time.monotonic() < deadline:
        tracker.poll()
        time.sleep(0.3)


def dlq_bodies(url: str, expected: int, timeout_s: float) -> list[str]:
    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        if int(count) >= expected:
            break
        time.sleep(0.5)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [m["Body"] for m in messages.get("Messages", [])]


def test_everything_is_accounted_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chaos = tmp_path / "chaos"
    chaos.mkdir()
    (chaos / "one-failure").write_text("")
    env = {
        "IMGPIPE_CHAOS_DIR": str(chaos),
        "IMGPIPE_CHAOS_KEY": "retry-me.jpg",
        "AWS_MAX_ATTEMPTS": "1",
        "IMGPIPE_SAFETY_MARGIN_MS": "500",
    }
    args = ["--workers", "2", "--function-timeout", "5", "--visibility-timeout", "2"]
    with imgpipe_up(args, env) as stack:
        use(stack, monkeypatch)
        s3 = boto3.client("s3")
        info = stack.info
        tracker = Tracker(info["raw_bucket"], info["table"], info["dlq_url"])
        truncated = photo_like_bytes(300, 200, seed=9)
        uploads = {
            **{f"good/{i}.jpg": photo_like_bytes(320 + i, 240, seed=i) for i in range(4)},
            "dir/a b+c%ü.jpg": photo_like_bytes(300, 300, seed=7),
            "retry-me.jpg": photo_like_bytes(200, 300, seed=8),
            "poison/text.jpg": b"plain text with a .jpg name",
            "poison/truncated.jpg": truncated[: len(truncated) // 3],
            "poison/empty.png": b"",
        }
        for key, data in uploads.items():
            s3.put_object(Bucket=info["raw_bucket"], Key=key, Body=data)
            tracker.sent(key)
        garbage = "this is not an S3 event"
        boto3.client("sqs").send_message(QueueUrl=info["queue_url"], MessageBody=garbage)

        wait_for(tracker, 60)
        assert tracker.pending == {}, f"not accounted for: {tracker.pending}"
        statuses = {k: (i["status"], i["reason"]) for k, i in tracker.items.items()}
        assert statuses["poison/text.jpg"] == ("FAILED", "unsupported_format")
        assert statuses["poison/truncated.jpg"] == ("FAILED", "corrupt")
        assert statuses["poison/empty.png"] == ("FAILED", "empty")
        for key in [*(f"good/{i}.jpg" for i in range(4)), "dir/a b+c%ü.jpg", "retry-me.jpg"]:
            assert statuses[key] == ("PROCESSED", None), key
        assert tracker.items["retry-me.jpg"]["attempts"] == 2, "failed once, then succeeded"
        assert list(chaos.iterdir()) == [], "the injected failure was used"
        assert tracker.items["good/0.jpg"]["attempts"] == 1

        # Only the body that is not an S3 event runs out of receives and lands in the DLQ.
        assert dlq_bodies(info["dlq_url"], 1, 40) == [garbage]
        renditions = {r["name"]: r for r in tracker.items["dir/a b+c%ü.jpg"]["renditions"]}
        thumb_key = renditions["thumb"]["key"]
        assert thumb_key.startswith("thumb/dir/a b+c%ü.jpg.") and thumb_key.endswith(".webp")
        thumb = s3.get_object(Bucket=info["processed_bucket"], Key=thumb_key)
        with Image.open(io.BytesIO(thumb["Body"].read())) as image:
            assert image.size == (200, 200)


def test_a_worker_killed_mid_batch_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--workers", "2", "--function-timeout", "30", "--visibility-timeout", "5"]
    with imgpipe_up(args, {"IMGPIPE_SAFETY_MARGIN_MS": "1000"}) as stack:
        use(stack, monkeypatch)
        s3 = boto3.client("s3")
        info = stack.info
        tracker = Tracker(info["raw_bucket"], info["table"], info["dlq_url"])
        images = {f"kill/{i}.jpg": photo_like_bytes(3200, 2400, seed=i) for i in range(16)}
        first, *rest = images.items()

        def send(key: str, data: bytes) -> None:
            s3.put_object(Bucket=info["raw_bucket"], Key=key, Body=data)
            tracker.sent(key)

        # The victim is killed on the first image (7.7 MP, a second or so of rendering), before
        # the others are sent: killed any later, it could have finished its batch already, and
        # its redelivered messages would be mere duplicates.
        send(*first)
        victim = None
        deadline = time.monotonic() + 30
        while victim is None and time.monotonic() < deadline:
            busy = [w for w in stack.status()["workers"] if w["batch"] > 0]
            victim = busy[0]["pid"] if busy else None
            time.sleep(0.05)
        assert victim is not None, "no worker picked up a batch"
        os.kill(victim, signal.SIGKILL)
        for key, data in rest:
            send(key, data)

        wait_for(tracker, 90)
        assert tracker.pending == {}, f"lost: {sorted(tracker.pending)}"
        assert all(item["status"] == "PROCESSED" for item in tracker.items.values())
        assert any(item["attempts"] >= 2 for item in tracker.items.values()), (
            "the killed worker's messages came back after the visibility timeout"
        )
        status = stack.status()
        assert status["restarts"] >= 1
        assert all(w["alive"] for w in status["workers"])
        assert json.dumps(status)


def test_demo_accounts_for_every_sample(tmp_path: Path) -> None:
    """`imgpipe demo --json`: the bundled samples, end to end, then a clean stop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMGPIPE_"))}
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo", "--json", "--out", str(out)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    summary = report["summary"]
    samples = sorted(p.name for p in (ROOT / "infra" / "samples").iterdir())
    assert sorted(row["source"] for row in report["images"]) == samples
    assert summary["unaccounted"] == 0 and summary["dlq"] == 0
    assert summary["failed"] == 1 and summary["processed"] == len(samples) - 1
    failed = [row for row in report["images"] if row["status"] == "FAILED"]
    assert failed[0]["source"] == "not-a-photo.jpg"
    assert failed[0]["reason"] == "unsupported_format"
    for row in report["images"]:
        for rendition in row.get("renditions", []):
            assert Path(rendition["path"]).stat().st_size == rendition["bytes"]
    assert "harbour-rotated.jpg" in (out / "index.html").read_text()
    assert summary["p50_latency_ms"] <= summary["p95_latency_ms"]


def test_backfill_on_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Existing objects in another bucket, enqueued by `imgpipe backfill`, are processed."""
    from infra.cli import main as imgpipe

    with imgpipe_up(["--workers", "2", "--source-bucket", "legacy-photos"]) as stack:
        use(stack, monkeypatch)
        s3 = boto3.client("s3")
        keys = [f"archive/{i} ü+%.jpg" for i in range(6)]
        for i, key in enumerate(keys):
            s3.put_object(Bucket="legacy-photos", Key=key, Body=photo_like_bytes(300, 200, seed=i))
        s3.put_object(Bucket="legacy-photos", Key="archive/readme.txt", Body=b"not an image")
        tracker = Tracker("legacy-photos", stack.info["table"], stack.info["dlq_url"])
        code = imgpipe(
            [
                "backfill",
                "s3://legacy-photos/archive/",
                "--queue-url",
                stack.info["queue_url"],
                "--no-progress",
            ]
        )
        assert code == 0
        for key in keys:
            tracker.sent(key)
        wait_for(tracker, 60)
        assert tracker.pending == {}
        assert all(item["status"] == "PROCESSED" for item in tracker.items.values())
        assert set(tracker.items) == set(keys), "the .txt key is filtered out by suffix"


@pytest.mark.parametrize(
    ("stop_with", "sigint_ignored"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm", "ctrl-c-in-a-background-job"],
)
def test_up_stops_cleanly_on_sigterm_and_on_ctrl_c_even_as_a_background_job(
    stop_with: signal.Signals, sigint_ignored: bool
) -> None:
    """The helper checks the clean stop: exit code 0 after "stopping: finishing the batches"."""
    with imgpipe_up(["--workers", "1"], stop_with=stop_with, sigint_ignored=sigint_ignored) as up:
        assert [worker["alive"] for worker in up.status()["workers"]] == [True]


def image_when_recorded(url: str, timeout_s: float, headers: dict[str, str]) -> dict[str, Any]:
    """GET /images/{id} until it stops answering 404 (not recorded yet)."""
    deadline = time.monotonic() + timeout_s
    while (answer := requests.get(url, headers=headers, timeout=10)).status_code == 404:
        assert time.monotonic() < deadline, f"{url} still 404 after {timeout_s} s"
        time.sleep(0.3)
    return dict(answer.json())


def test_the_api_is_routed_and_served_as_on_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the local API Gateway: the template's routes only, each behind the template's
    JWT authorizer (the demo users' tokens from moto's Cognito), ids with slashes on the greedy
    route, uploads checked against their policy, renditions at the CDN stand-in, users kept
    to their own images, and POST /process only with OnDemandProcessing and for admins."""
    with imgpipe_up(["--workers", "1"]) as stack:
        use(stack, monkeypatch)
        users = stack.info["users"]
        assert sorted(users) == ["admin", "alice", "bob"]
        assert [users[name]["admin"] for name in ("admin", "alice", "bob")] == [True, False, False]
        alice, bob = bearer(users["alice"]["token"]), bearer(users["bob"]["token"])
        assert requests.post(f"{stack.url}/process", json={}, headers=alice, timeout=10).json() == {
            "message": "Not Found"
        }
        jpeg = photo_like_bytes(400, 300, seed=4)
        ask = {"filename": "写真.jpg", "contentType": "image/jpeg", "size": len(jpeg)}
        refused = requests.post(f"{stack.url}/uploads", timeout=10, json=ask)
        assert (refused.status_code, refused.json()) == (401, {"message": "Unauthorized"})
        upload = requests.post(f"{stack.url}/uploads", timeout=10, json=ask, headers=alice).json()
        assert upload["key"].endswith("/写真.jpg"), upload
        form = {"file": ("cat.jpg", jpeg, "image/jpeg")}
        posted = requests.post(upload["url"], data=upload["fields"], files=form, timeout=10)
        assert posted.status_code == 204, posted.text
        image_url = f"{stack.url}/images/{quote(upload['imageId'], safe='/')}"
        item = image_when_recorded(image_url, 60, alice)
        assert item["status"] == "PROCESSED", item
        for rendition in item["renditions"]:
            assert rendition["url"].startswith(f"{stack.url}/cdn/")
            served = requests.get(rendition["url"], timeout=10)
            assert served.status_code == 200 and len(served.content) == rendition["bytes"]
        assert requests.get(image_url, headers=bob, timeout=10).status_code == 404
    with imgpipe_up(["--workers", "1", "--on-demand"]) as stack:
        use(stack, monkeypatch)
        users = stack.info["users"]
        boto3.client("s3").put_object(Bucket=stack.raw_bucket, Key="uploads/x/a.jpg", Body=jpeg)
        body = {"bucket": stack.raw_bucket, "key": "uploads/x/a.jpg"}
        plain = requests.post(f"{stack.url}/process", json=body, timeout=30,
                              headers=bearer(users["bob"]["token"]))  # fmt: skip
        assert plain.status_code == 403, plain.text
        answer = requests.post(f"{stack.url}/process", json=body, timeout=30,
                               headers=bearer(users["admin"]["token"]))  # fmt: skip
        assert answer.status_code == 200 and answer.json()["status"] == "PROCESSED"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
