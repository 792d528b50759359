"""`imgpipe backfill` against moto S3, SQS and DynamoDB (in-process), through the real command,
the real boto3 clients and, end to end, the real SQS batch handler."""

import argparse
import csv
import gzip
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from aws_helpers import (
    context,
    drain_bodies,
    receive_event,
)
from botocore.awsrequest import AWSResponse

import handlers.process
from core.events import BACKFILL_EVENT_SOURCE, parse_body
from core.settings import Settings
from infra.backfill.clients import Clients, make_clients
from infra.backfill.preflight import RAW_BUCKET_TAG, SOURCE_BUCKETS_TAG
from infra.backfill.run import Backfill
from infra.commands import backfill as command
from infra.local.provision import Stack
from loadtest.synthetic import photo_like_bytes

JPEG = photo_like_bytes(96, 64, seed=3)
ROUND_TRIP_KEYS = [
    "plain.jpg",
    "with space.jpg",
    "plus+sign.jpg",
    "percent%25and%.jpg",
    "ünïcødé/猫 🐱.jpeg",
    "a+b c%2B/x y.PNG",
]


@pytest.fixture
def quiet(stack: Stack) -> Stack:
    """The stack without the raw bucket's notification: only backfill writes to the queue."""
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=stack.raw_bucket, NotificationConfiguration={}
    )
    boto3.client("sqs").purge_queue(QueueUrl=stack.queue_url)
    return stack


def put(stack: Stack, key: str, body: bytes = JPEG) -> str:
    etag = boto3.client("s3").put_object(Bucket=stack.raw_bucket, Key=key, Body=body)["ETag"]
    return str(etag).strip('"')


def drain(queue_url: str) -> list[str]:
    return drain_bodies(boto3.client("sqs"), queue_url)


def sent_keys(bodies: list[str]) -> list[str]:
    return [source.key for body in bodies for source in parse_body(body)]


def args_for(stack: Stack, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    base = [f"s3://{stack.raw_bucket}", "--queue-url", stack.queue_url, "--no-progress", "--json"]
    given = [*base, *argv] if not argv or argv[0] != "--bare" else list(argv[1:])
    # moto is mocked in this process: a spawned sender process would not see it.
    return parser.parse_args([*given, "--processes", "1"])


def backfill(
    capsys: pytest.CaptureFixture[str], stack: Stack, *argv: str, clients: Clients | None = None
) -> tuple[int, dict[str, Any]]:
    """Run the command as the CLI does; return its exit code and its --json summary."""
    capsys.readouterr()
    code = command.run(args_for(stack, *argv), clients)
    out, err = capsys.readouterr()
    summary = json.loads(out) if out.strip() else {}
    summary["stderr"] = err
    return code, summary


def accounted(summary: dict[str, Any]) -> None:
    """Every listed key ends up filtered, skipped, missing, sent or failed: none vanish."""
    for counts in (summary["counts"], summary["this_run"]):
        outcomes = ("filtered", "skipped_processed", "missing", "sent", "failed")
        assert counts["listed"] == sum(counts[name] for name in outcomes), counts


def call_error(url: str, code: str, status: int) -> tuple[AWSResponse, dict[str, Any]]:
    """A ``before-call`` answer: the call fails with ``code`` before any request is made."""
    parsed = {
        "Error": {"Code": code, "Message": "injected"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return AWSResponse(url, status, {}, None), parsed


def clients_for(stack: Stack, tmp_path: Path, **options: Any) -> Clients:
    args = args_for(stack, "--state", str(tmp_path / "unused"))
    opts = command.options_from_args(args)
    for name, value in options.items():
        setattr(opts, name, value)
    return make_clients(opts)


# ----------------------------------------------------------------------------------- end to end


def test_backfilled_keys_round_trip_through_the_handler_and_are_recorded(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    etags = {key: put(quiet, key) for key in ROUND_TRIP_KEYS}
    code, summary = backfill(capsys, quiet, "--state", str(tmp_path / "state.json"))
    assert code == 0 and summary["complete"] and summary["counts"]["sent"] == len(etags)
    accounted(summary)

    event = receive_event(quiet, len(etags))
    bodies = [record["body"] for record in event["Records"]]
    assert sorted(sent_keys(bodies)) == sorted(etags)  # unchanged by the URL-encoding
    records = [json.loads(body)["Records"] for body in bodies]
    assert all(len(r) == 1 and r[0]["eventSource"] == BACKFILL_EVENT_SOURCE for r in records)
    assert handlers.process.handler(event, context()) == {"batchItemFailures": []}

    table = boto3.resource("dynamodb").Table(quiet.table)
    for key, etag in etags.items():
        item = table.get_item(Key={"image_id": f"{quiet.raw_bucket}/{key}"})["Item"]
        assert (item["status"], item["etag"], item["key"]) == ("PROCESSED", etag, key)
        assert item["renditions"] and item["renditions"][0]["key"].startswith("thumb/" + key)

    # A second backfill with --skip-processed finds them all done and sends nothing.
    for message in event["Records"]:
        boto3.client("sqs").delete_message(
            QueueUrl=quiet.queue_url, ReceiptHandle=message["receiptHandle"]
        )
    code, again = backfill(capsys, quiet, "--skip-processed", "--table", quiet.table)
    assert code == 0 and again["counts"]["skipped_processed"] == len(etags)
    assert again["counts"]["sent"] == 0 and drain(quiet.queue_url) == []


# ----------------------------------------------------------------------------------- filters


def test_suffix_filter(quiet: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("a.JPG", "b.jpeg", "c.Png", "d.heic", "e.txt", "f", "folder/"):
        put(quiet, key, b"x")
    code, summary = backfill(capsys, quiet)
    assert code == 0 and summary["counts"]["filtered"] == 3
    assert sorted(sent_keys(drain(quiet.queue_url))) == ["a.JPG", "b.jpeg", "c.Png", "d.heic"]
    backfill(capsys, quiet, "--suffix", "TXT")
    assert sent_keys(drain(quiet.queue_url)) == ["e.txt"]
    backfill(capsys, quiet, "--suffix", "*")
    assert len(drain(quiet.queue_url)) == 7


def test_prefix_size_and_time_filters_on_a_listing(
    quiet: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, size in (
        ("in/small.jpg", 5),
        ("in/mid.jpg", 50),
        ("in/big.jpg", 500),
        ("out.jpg", 50),
    ):
        put(quiet, key, b"x" * size)
    code, summary = backfill(capsys, quiet, "--bare", f"s3://{quiet.raw_bucket}/in/",
                             "--queue-url", quiet.queue_url, "--no-progress", "--json",
                             "--min-size", "50", "--max-size", "0.1KB")  # fmt: skip
    assert code == 0 and summary["counts"]["listed"] == 3 and summary["counts"]["filtered"] == 2
    assert sent_keys(drain(quiet.queue_url)) == ["in/mid.jpg"]
    backfill(capsys, quiet, "--modified-before", "2000-01-01")
    assert drain(quiet.queue_url) == []
    now = datetime.now(UTC).isoformat()
    backfill(capsys, quiet, "--modified-after", "2000-01-01", "--modified-before", now)
    assert len(drain(quiet.queue_url)) == 4


def inventory_rows(bucket: str) -> list[list[str]]:
    rows = []
    for n, (size, date) in enumerate(
        [(10, "2020-06-01"), (100, "2022-06-01"), (1000, "2024-06-01"), (100, "2024-01-01")]
    ):
        key = f"inv/{n} ü+{size}.jpg"
        rows.append([bucket, quote(key), str(size), f"{date}T00:00:00.000Z", f"etag{n}"])
    rows.append([bucket, quote("inv/deleted.jpg"), "", "2024-01-01T00:00:00.000Z", ""])
    return rows


def write_inventory(folder: Path, bucket: str, rows: list[list[str]]) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(2):  # two files, so a resume position can point into the second
        name = f"data/part-{n}.csv.gz"
        with gzip.open(folder / name, "wt", encoding="utf-8", newline="") as out:
            csv.writer(out, quoting=csv.QUOTE_ALL).writerows(rows[n::2])
        files.append({"key": f"src/config/{name}", "size": (folder / name).stat().st_size})
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "sourceBucket": bucket,
                "destinationBucket": "arn:aws:s3:::imgpipe-inventory",
                "fileFormat": "CSV",
                "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
                "files": files,
            }
        )
    )
    return folder / "manifest.json"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), {"inv/0 ü+10.jpg", "inv/1 ü+100.jpg", "inv/2 ü+1000.jpg", "inv/3 ü+100.jpg"}),
        (("--min-size", "100", "--max-size", "999"), {"inv/1 ü+100.jpg", "inv/3 ü+100.jpg"}),
        (("--modified-after", "2022-06-01", "--modified-before", "2024-06-01"),
         {"inv/1 ü+100.jpg", "inv/3 ü+100.jpg"}),
        (("--modified-after", "2024-01-01T00:00:00.001"), {"inv/2 ü+1000.jpg"}),
    ],
)  # fmt: skip
def test_inventory_manifest_backfills_with_filters(
    quiet: Stack,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    flags: tuple[str, ...],
    expected: set[str],
) -> None:
    manifest = write_inventory(tmp_path, quiet.raw_bucket, inventory_rows(quiet.raw_bucket))
    code, summary = backfill(capsys, quiet, "--inventory", str(manifest), *flags)
    assert code == 0 and summary["complete"], summary
    accounted(summary)
    sources = [s for body in drain(quiet.queue_url) for s in parse_body(body)]
    assert {s.key for s in sources} == expected and len(sources) == len(expected)
    for source in sources:  # size, ETag and time come from the inventory row: no HeadObject
        n = int(source.key.split("/")[1][0])
        assert source.etag == f"etag{n}" and source.size == int(source.key.split("+")[1][:-4])


def test_inventory_manifest_in_s3(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = write_inventory(tmp_path, quiet.raw_bucket, inventory_rows(quiet.raw_bucket))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="imgpipe-inventory")
    s3.upload_file(str(manifest), "imgpipe-inventory", "src/config/2024-07-01T00-00Z/manifest.json")
    for entry in json.loads(manifest.read_text())["files"]:
        s3.upload_file(
            str(tmp_path / entry["key"].split("config/")[1]), "imgpipe-inventory", entry["key"]
        )
    url = "s3://imgpipe-inventory/src/config/2024-07-01T00-00Z/manifest.json"
    code, summary = backfill(capsys, quiet, "--bare", "--inventory", url,
                             "--queue-url", quiet.queue_url, "--no-progress", "--json")  # fmt: skip
    assert code == 0 and summary["bucket"] == quiet.raw_bucket and summary["counts"]["sent"] == 4
    assert len(set(sent_keys(drain(quiet.queue_url)))) == 4


# ----------------------------------------------------------------------------------- key files


def test_from_file_heads_each_key_and_counts_missing_ones(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    etags = {key: put(quiet, key, b"y" * (10 + n)) for n, key in enumerate(ROUND_TRIP_KEYS[:4])}
    keys = tmp_path / "keys.txt"
    keys.write_text("\n".join([*etags, "", "not/there.jpg", "notes.txt"]) + "\n", encoding="utf-8")
    code, summary = backfill(capsys, quiet, "--from-file", str(keys), "--min-size", "11")
    assert code == 0 and summary["counts"]["missing"] == 1, summary
    assert summary["counts"]["filtered"] == 2  # notes.txt by suffix, the 10-byte one by size
    accounted(summary)
    sources = [s for body in drain(quiet.queue_url) for s in parse_body(body)]
    assert {s.key: s.etag for s in sources} == {k: e for k, e in list(etags.items())[1:]}
    assert all(s.size == 10 + ROUND_TRIP_KEYS.index(s.key) for s in sources)


def test_from_stdin_without_head(
    quiet: Stack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO("never put.jpg\nü+%.png\n".encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, summary = backfill(capsys, quiet, "--from-file", "-", "--no-head")
    assert code == 0 and summary["counts"]["sent"] == 2
    sources = [s for body in drain(quiet.queue_url) for s in parse_body(body)]
    assert sorted((s.key, s.size, s.etag) for s in sources) == [
        ("never put.jpg", 0, ""),
        ("ü+%.png", 0, ""),
    ]
    code, _ = backfill(capsys, quiet, "--from-file", "-", "--no-head", "--min-size", "1")
    assert code == 2  # a size filter needs the metadata --no-head skips


# ----------------------------------------------------------------------------------- skip-processed


def test_skip_processed_checks_status_etag_and_profile(
    quiet: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg")
    etags = {key: put(quiet, key, key.encode()) for key in keys}
    table = boto3.resource("dynamodb").Table(quiet.table)
    bucket, profile = quiet.raw_bucket, Settings.from_env().profile
    done = {"status": "PROCESSED", "profile": profile}
    table.put_item(Item={"image_id": f"{bucket}/a.jpg", **done, "etag": etags["a.jpg"]})
    table.put_item(Item={"image_id": f"{bucket}/b.jpg", **done, "etag": "older"})
    table.put_item(Item={"image_id": f"{bucket}/c.jpg", "status": "FAILED", "etag": etags["c.jpg"]})
    outdated = {**done, "profile": "0ld0ld00", "etag": etags["e.jpg"]}
    table.put_item(Item={"image_id": f"{bucket}/e.jpg", **outdated})
    code, summary = backfill(capsys, quiet, "--skip-processed", "--table", quiet.table)
    assert code == 0 and summary["counts"]["skipped_processed"] == 1
    accounted(summary)
    assert sorted(sent_keys(drain(quiet.queue_url))) == ["b.jpg", "c.jpg", "d.jpg", "e.jpg"]


# ----------------------------------------------------------------------------------- failures


def drop_then_fail(
    ids_to_fail: Callable[[int, list[dict[str, Any]]], set[str]], client: Any
) -> dict[str, Any]:
    """Hooks on the real SQS client that make SQS *not* enqueue some entries and list them in
    ``Failed``, exactly like a partial SendMessageBatch failure."""
    state: dict[str, Any] = {"call": 0, "dropped": [], "none_left": False}

    def params(params: dict[str, Any], **_: Any) -> dict[str, Any]:
        state["call"] += 1
        failing = ids_to_fail(state["call"], params["Entries"])
        state["dropped"] = [e["Id"] for e in params["Entries"] if e["Id"] in failing]
        kept = [e for e in params["Entries"] if e["Id"] not in failing]
        state["none_left"] = not kept
        return {**params, "Entries": kept or params["Entries"]}

    def before_call(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not state["none_left"]:
            return None
        parsed = {"Successful": [], "ResponseMetadata": {"HTTPStatusCode": 200}}
        return AWSResponse("http://sqs", 200, {}, None), parsed  # nothing left to send

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Failed", []).extend(
            {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for i in state["dropped"]
        )

    events = client.meta.events
    events.register("provide-client-params.sqs.SendMessageBatch", params)
    events.register("before-call.sqs.SendMessageBatch", before_call)
    events.register("after-call.sqs.SendMessageBatch", after_call)
    return state


def test_partial_batch_failure_is_retried_and_nothing_is_lost(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = [f"k/{n:03d}.jpg" for n in range(35)]
    for key in keys:
        put(quiet, key, b"z")
    clients = clients_for(quiet, tmp_path)
    drop_then_fail(lambda call, _: {"2", "5", "7"} if call == 1 else set(), clients.sqs)
    code, summary = backfill(capsys, quiet, clients=clients)
    assert code == 0 and summary["this_run"]["retried"] == 3 and summary["this_run"]["failed"] == 0
    assert summary["counts"]["sent"] == 35
    sent = Counter(sent_keys(drain(quiet.queue_url)))
    assert sorted(sent) == keys and set(sent.values()) == {1}  # each exactly once


def test_failed_calls_are_retried(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for n in range(12):
        put(quiet, f"{n}.jpg", b"z")
    clients = clients_for(quiet, tmp_path)
    calls = {"n": 0}

    def throttle(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """Answer the first two calls with a throttling error before any request is made."""
        calls["n"] += 1
        if calls["n"] > 2:
            return None
        return call_error(quiet.queue_url, "RequestThrottled", 400)

    clients.sqs.meta.events.register("before-call.sqs.SendMessageBatch", throttle)
    code, summary = backfill(capsys, quiet, "--concurrency", "1", clients=clients)
    assert code == 0 and summary["counts"]["sent"] == 12 and summary["this_run"]["retried"] >= 10
    assert len(drain(quiet.queue_url)) == 12


def test_exhausted_retries_write_the_failures_file(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = ["ok-1.jpg", "poison 1.jpg", "ok-2.jpg", "poison+2.jpg"]
    for key in keys:
        put(quiet, key, b"z")
    clients = clients_for(quiet, tmp_path)

    def poisoned(_: int, entries: list[dict[str, Any]]) -> set[str]:
        return {e["Id"] for e in entries if "poison" in e["MessageBody"]}

    drop_then_fail(poisoned, clients.sqs)
    state = tmp_path / "state.json"
    code, summary = backfill(
        capsys, quiet, "--retries", "2", "--state", str(state), clients=clients
    )
    assert code == 1 and summary["complete"]
    assert summary["counts"]["failed"] == 2 and summary["counts"]["sent"] == 2
    accounted(summary)
    failures = [
        json.loads(line) for line in Path(summary["failures_file"]).read_text().splitlines()
    ]
    assert summary["failures_file"] == str(state) + ".failures.jsonl"
    assert sorted(f["key"] for f in failures) == ["poison 1.jpg", "poison+2.jpg"]
    assert all(
        f["error"] == "SendMessageBatch: InternalError" and f["attempts"] == 3 for f in failures
    )
    assert sorted(sent_keys(drain(quiet.queue_url))) == ["ok-1.jpg", "ok-2.jpg"]


# ----------------------------------------------------------------------------------- runs


def test_dry_run_counts_and_samples_without_sending(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for n in range(15):
        put(quiet, f"d/{n:02d}.jpg", b"q")
    put(quiet, "d/readme.md", b"q")
    state = tmp_path / "state.json"
    code, summary = backfill(capsys, quiet, "--dry-run", "--sample", "3", "--state", str(state))
    assert code == 0 and summary["dry_run"] and summary["this_run"]["sent"] == 15
    assert [s["key"] for s in summary["sample"]] == ["d/00.jpg", "d/01.jpg", "d/02.jpg"]
    assert summary["sample"][0]["size"] == 1 and summary["sample"][0]["etag"]
    assert drain(quiet.queue_url) == [] and not state.exists()


def test_max_rate_limits_the_send_rate(quiet: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(60):
        put(quiet, f"r/{n:02d}.jpg", b"q")
    code, summary = backfill(capsys, quiet, "--max-rate", "100")
    # A burst of 10, then 50 more at 100/s.
    assert code == 0 and summary["counts"]["sent"] == 60 and summary["elapsed_s"] >= 0.45


def test_resume_continues_from_the_state_without_gaps(
    quiet: Stack,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [f"p/{n:03d}.jpg" for n in range(120)]
    for key in keys:
        put(quiet, key, b"q")
    state = tmp_path / "state.json"
    runs: list[Backfill] = []
    real_run = Backfill.run

    def capture(self: Backfill, *args: Any, **kwargs: Any) -> Any:
        runs.append(self)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Backfill, "run", capture)
    calls = Counter[str]()

    def stop_after_some(**_: Any) -> None:  # as Ctrl-C would, part-way through
        calls["n"] += 1
        if calls["n"] == 4:
            runs[-1].stop()

    clients = clients_for(quiet, tmp_path)
    clients.sqs.meta.events.register("after-call.sqs.SendMessageBatch", stop_after_some)
    flags = ("--state", str(state), "--page-size", "10", "--concurrency", "2")
    code, first = backfill(capsys, quiet, *flags, clients=clients)
    assert code == 130 and first["interrupted"] and not first["complete"]
    saved = json.loads(state.read_text())
    assert saved["position"]["continuation_token"] and not saved["complete"]
    assert 0 < saved["counts"]["sent"] < 120

    code, second = backfill(capsys, quiet, *flags)
    assert code == 0 and second["complete"] and second["resumed"]
    assert second["counts"]["sent"] == 120 and second["counts"]["listed"] == 120
    sent = Counter(sent_keys(drain(quiet.queue_url)))
    assert sorted(sent) == keys  # no gap
    assert sum(sent.values()) < 120 + 40  # duplicates only around the boundary

    code, third = backfill(capsys, quiet, *flags)  # already complete: nothing more to do
    assert code == 0 and third["complete"] and drain(quiet.queue_url) == []


def test_state_of_another_source_is_refused(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    put(quiet, "x.jpg")
    assert backfill(capsys, quiet, "--state", str(state))[0] == 0
    keys = tmp_path / "keys.txt"
    keys.write_text("x.jpg\n")
    code, refused = backfill(capsys, quiet, "--state", str(state), "--from-file", str(keys))
    assert code == 2 and "another backfill" in refused["stderr"]


def test_a_missing_queue_or_table_fails_before_anything_is_listed(
    quiet: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    put(quiet, "x.jpg")
    missing_queue = quiet.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    code, summary = backfill(capsys, quiet, "--bare", f"s3://{quiet.raw_bucket}",
                             "--queue-url", missing_queue, "--no-progress")  # fmt: skip
    assert code == 2 and "cannot use queue" in summary["stderr"]
    code, summary = backfill(capsys, quiet, "--skip-processed", "--table", "no-such-table")
    assert code == 2 and "cannot read table" in summary["stderr"]
    assert drain(quiet.queue_url) == []


# ----------------------------------------------------------------------------------- readable buckets


def tag_queue(stack: Stack, *source_buckets: str) -> None:
    """Tag the jobs queue as the template does: the raw bucket and BackfillSourceBuckets."""
    boto3.client("sqs").tag_queue(
        QueueUrl=stack.queue_url,
        Tags={RAW_BUCKET_TAG: stack.raw_bucket, SOURCE_BUCKETS_TAG: " ".join(source_buckets)},
    )


def other_bucket(name: str) -> str:
    """A bucket outside the stack, holding one image."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="old/photo.jpg", Body=JPEG)
    return name


def backfill_of(
    capsys: pytest.CaptureFixture[str],
    stack: Stack,
    bucket: str,
    *argv: str,
    clients: Clients | None = None,
) -> tuple[int, dict[str, Any]]:
    """``backfill`` of another bucket than the stack's raw bucket."""
    return backfill(capsys, stack, "--bare", f"s3://{bucket}", "--queue-url", stack.queue_url,
                    "--no-progress", "--json", *argv, clients=clients)  # fmt: skip


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["send", "dry-run"])
def test_a_bucket_the_process_function_may_not_read_is_refused_before_listing(
    quiet: Stack, capsys: pytest.CaptureFixture[str], dry_run: tuple[str, ...]
) -> None:
    tag_queue(quiet, "listed-source")
    code, refused = backfill_of(capsys, quiet, other_bucket("unlisted-source"), *dry_run)
    assert code == 2 and "counts" not in refused
    error = refused["stderr"].strip()
    assert error.startswith("error: the process function may not read s3://unlisted-source:")
    assert "BackfillSourceBuckets" in error and "FAILED access_denied" in error
    assert len(error.splitlines()) == 1, "one paragraph, no traceback"
    assert drain(quiet.queue_url) == []


def test_the_raw_bucket_and_the_listed_source_buckets_are_allowed(
    quiet: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tag_queue(quiet, "first-source", "second-source")
    put(quiet, "new.jpg")
    for code, summary in (
        backfill(capsys, quiet),
        backfill_of(capsys, quiet, other_bucket("second-source")),
    ):
        assert code == 0 and summary["counts"]["sent"] == 1
        assert "warning" not in summary["stderr"]
    sources = {(s.bucket, s.key) for body in drain(quiet.queue_url) for s in parse_body(body)}
    assert sources == {(quiet.raw_bucket, "new.jpg"), ("second-source", "old/photo.jpg")}


@pytest.mark.parametrize("tags", ["absent", "denied"])
def test_without_readable_tags_the_check_is_skipped_with_one_warning(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path, tags: str
) -> None:
    clients = clients_for(quiet, tmp_path)
    if tags == "absent":
        clients.sqs.untag_queue(
            QueueUrl=quiet.queue_url, TagKeys=[RAW_BUCKET_TAG, SOURCE_BUCKETS_TAG]
        )
    else:
        tag_queue(quiet)  # these tags would refuse the bucket, if they could be read

        def denied(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            return call_error(quiet.queue_url, "AccessDenied", 403)

        clients.sqs.meta.events.register("before-call.sqs.ListQueueTags", denied)
    code, summary = backfill_of(capsys, quiet, other_bucket("unknown-source"), clients=clients)
    assert code == 0 and summary["counts"]["sent"] == 1
    warnings = [line for line in summary["stderr"].splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "read s3://unknown-source was skipped" in warnings[0]
    assert ("AccessDenied" in warnings[0]) == (tags == "denied")


def test_an_error_no_retry_fixes_stops_the_run_instead_of_failing_every_key(
    quiet: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for n in range(30):
        put(quiet, f"{n:02d}.jpg", b"z")
    clients = clients_for(quiet, tmp_path)

    def denied(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return call_error(quiet.queue_url, "AccessDenied", 403)

    clients.sqs.meta.events.register("before-call.sqs.SendMessageBatch", denied)
    state = tmp_path / "state.json"
    code, summary = backfill(capsys, quiet, "--state", str(state), clients=clients)
    assert code == 1 and "AccessDenied" in summary["error"] and not summary["complete"]
    assert summary["counts"]["failed"] == 0 and summary["failures_file"] is None
    assert json.loads(state.read_text())["counts"]["sent"] == 0
