"""`imgpipe reconcile` against the embedded moto server: each kind of drift is planted, found,
and fixed by --fix; nothing else is touched. Keys with spaces and non-ASCII characters check
that the on-disk sort agrees with S3's listing order, with runs spilled every two rows."""

import argparse
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_helpers import drain_bodies, embedded_aws

from core.aws import S3Storage, dynamodb_client, images_catalog, s3_client
from core.catalog import ImageRecord, Rendition, Status
from core.events import BACKFILL_EVENT_SOURCE, parse_body
from core.settings import Settings
from infra.backfill.clients import Clients
from infra.backfill.options import Options
from infra.backfill.sender import Sender
from infra.commands import reconcile as command
from infra.local.provision import Stack, provision
from infra.reconcile.run import Fixers, Reconcile

UP_TO_DATE = ("Zed.jpg", "a b.jpg")  # raw object, PROCESSED item, its rendition stored
WITHOUT_RESULT = ("lost.jpg", "ünï/😀 1.jpg")  # raw object, no item
STALE = "stale.jpg"  # raw object, an item of another ETag
ORPHAN = "orphan.jpg"  # PROCESSED item and its rendition, no raw object
GONE = "gone.jpg"  # DELETED item, no raw object: no drift
STRAY = "thumb/stray.jpg.00000000-00000000.webp"  # a rendition nobody points at


@pytest.fixture
def stack() -> Iterator[Stack]:
    with embedded_aws() as _aws:
        stack = provision("rec")
        s3 = s3_client()
        s3.put_bucket_notification_configuration(  # only this test writes the queue and table
            Bucket=stack.raw_bucket, NotificationConfiguration={}
        )
        boto3.client("sqs").purge_queue(QueueUrl=stack.queue_url)
        catalog = images_catalog(stack.table)
        for key in (*UP_TO_DATE, *WITHOUT_RESULT, STALE):
            etag = s3.put_object(Bucket=stack.raw_bucket, Key=key, Body=key.encode())["ETag"]
            if key in UP_TO_DATE or key == STALE:
                catalog.put(processed(stack, key, etag.strip('"') if key != STALE else "other"))
        catalog.put(processed(stack, ORPHAN, "e0"))
        catalog.put(ImageRecord(stack.raw_bucket, GONE, Status.DELETED, event_order="1"))
        s3.put_object(Bucket=stack.output_bucket, Key=STRAY, Body=b"stray")
        yield stack


def processed(stack: Stack, key: str, etag: str) -> ImageRecord:
    """A PROCESSED item with one rendition, which is stored."""
    output = f"thumb/{key}.{etag[:8]}-p.webp"
    s3_client().put_object(Bucket=stack.output_bucket, Key=output, Body=b"webp")
    rendition = Rendition("thumb", output, "webp", 1, 1, 4)
    return ImageRecord(stack.raw_bucket, key, Status.PROCESSED, etag=etag, event_order="1",
                       renditions=(rendition,))  # fmt: skip


def reconcile(capsys: pytest.CaptureFixture[str], stack: Stack, *argv: str) -> tuple[int, Any]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    command.register(sub)
    args = parser.parse_args([
        "reconcile", "--raw-bucket", stack.raw_bucket, "--processed-bucket", stack.output_bucket,
        "--table", stack.table, "--queue-url", stack.queue_url, "--json", "--no-progress", *argv,
    ])  # fmt: skip
    capsys.readouterr()
    code = args.run(args)
    return code, json.loads(capsys.readouterr().out)


def found(report: dict[str, Any], kind: str) -> list[str]:
    return sorted(f["key"] for f in report["samples"][kind])


def stored(bucket: str) -> set[str]:
    listed = s3_client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listed}


def test_reconcile_reports_each_kind_of_drift(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = reconcile(capsys, stack, "--min-age", "0")
    assert code == 1 and report["complete"]
    assert found(report, "source_without_result") == sorted([*WITHOUT_RESULT, STALE])
    assert found(report, "result_without_source") == [ORPHAN]
    assert found(report, "unreferenced_rendition") == [STRAY]
    counts = report["counts"]
    assert (counts["items_scanned"], counts["raw_listed"]) == (5, 5)
    assert counts["processed_listed"] == 5  # four renditions of items, and the stray one
    assert report["drift"] == 5 and counts["enqueued"] == counts["marked_deleted"] == 0
    assert STRAY in stored(stack.output_bucket), "nothing is fixed without --fix"


def test_young_objects_are_left_alone(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = reconcile(capsys, stack)  # the default --min-age: everything is younger
    assert code == 1 and found(report, "result_without_source") == [ORPHAN]
    assert found(report, "source_without_result") == found(report, "unreferenced_rendition") == []
    assert report["counts"]["too_young"] == 5 + 1  # the raw objects, and the stray rendition


def test_the_on_disk_sort_gives_the_same_findings(stack: Stack) -> None:
    """Runs of two rows: the table's rows are merged back from spilled files."""
    settings = Settings.from_env({"IMGPIPE_RAW_BUCKET": stack.raw_bucket,
                                  "IMGPIPE_OUTPUT_BUCKET": stack.output_bucket,
                                  "IMGPIPE_TABLE": stack.table})  # fmt: skip
    report = Reconcile(settings, s3_client(), dynamodb_client(), min_age_s=0, chunk=2).run()
    assert sorted(f["key"] for f in report.samples["source_without_result"]) == sorted(
        [*WITHOUT_RESULT, STALE]
    )
    assert [f["key"] for f in report.samples["result_without_source"]] == [ORPHAN]
    assert [f["key"] for f in report.samples["unreferenced_rendition"]] == [STRAY]


def test_fix_enqueues_marks_deleted_and_deletes(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = stored(stack.output_bucket) - {STRAY, f"thumb/{ORPHAN}.e0-p.webp"}
    code, report = reconcile(capsys, stack, "--min-age", "0", "--fix")
    assert code == 0, report
    counts = report["counts"]
    assert (counts["enqueued"], counts["marked_deleted"], counts["renditions_deleted"]) == (3, 1, 1)
    assert counts["fix_failed"] == 0

    bodies = drain_bodies(boto3.client("sqs"), stack.queue_url)
    sources = [s for body in bodies for s in parse_body(body)]
    assert sorted(s.key for s in sources) == sorted([*WITHOUT_RESULT, STALE])
    assert all(json.loads(b)["Records"][0]["eventSource"] == BACKFILL_EVENT_SOURCE for b in bodies)
    orphan = images_catalog(stack.table).get(f"{stack.raw_bucket}/{ORPHAN}")
    assert orphan is not None and (orphan.status, orphan.renditions) == (Status.DELETED, ())
    assert stored(stack.output_bucket) == kept, "the orphan's and the stray rendition are gone"

    code, again = reconcile(capsys, stack, "--min-age", "0")
    assert found(again, "result_without_source") == found(again, "unreferenced_rendition") == []
    assert again["counts"]["source_without_result"] == 3  # sent, not yet processed


def test_fix_leaves_a_result_whose_source_came_back_since_the_listing(stack: Stack) -> None:
    """The orphan's object is uploaded again right after the raw bucket's listing: --fix looks
    it up before marking the item DELETED, and leaves it and its rendition alone."""
    settings = Settings.from_env({"IMGPIPE_RAW_BUCKET": stack.raw_bucket,
                                  "IMGPIPE_OUTPUT_BUCKET": stack.output_bucket,
                                  "IMGPIPE_TABLE": stack.table,
                                  "IMGPIPE_QUEUE_URL": stack.queue_url})  # fmt: skip
    lister, listed = s3_client(), []

    def reupload(**_: Any) -> None:
        if listed[-1] == stack.raw_bucket:
            s3_client().put_object(Bucket=stack.raw_bucket, Key=ORPHAN, Body=b"back")

    lister.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2",
        lambda params, **_: listed.append(params["Bucket"]),
    )
    lister.meta.events.register("after-call.s3.ListObjectsV2", reupload)
    fixers = Fixers(Sender(Options(stack.raw_bucket, stack.queue_url, head=False),
                           Clients(lister, boto3.client("sqs")), threading.Event(),
                           threading.Event(), None),
                    S3Storage(s3_client()), images_catalog(stack.table))  # fmt: skip
    report = Reconcile(settings, lister, dynamodb_client(), fixers=fixers, min_age_s=0).run()
    assert [f["key"] for f in report.samples["result_without_source"]] == [ORPHAN]
    assert report.counts["marked_deleted"] == 0
    orphan = images_catalog(stack.table).get(f"{stack.raw_bucket}/{ORPHAN}")
    assert orphan is not None and orphan.status == Status.PROCESSED
    assert f"thumb/{ORPHAN}.e0-p.webp" in stored(stack.output_bucket)


def test_a_stopped_run_says_it_is_incomplete(stack: Stack) -> None:
    """Ctrl-C sets the stop flag: the run ends after the page in hand, reported interrupted."""
    settings = Settings.from_env({"IMGPIPE_RAW_BUCKET": stack.raw_bucket,
                                  "IMGPIPE_OUTPUT_BUCKET": stack.output_bucket,
                                  "IMGPIPE_TABLE": stack.table})  # fmt: skip
    stop = threading.Event()
    pages: list[str] = []

    def tick(phase: str, _counts: dict[str, int]) -> None:
        pages.append(phase)
        stop.set()  # as the signal handler would, during the first page

    run = Reconcile(settings, s3_client(), dynamodb_client(), min_age_s=0, stop=stop)
    report = run.run(tick)
    assert (report.interrupted, report.complete) == (True, False)
    assert pages == ["scan"] and report.counts["raw_listed"] == 0
