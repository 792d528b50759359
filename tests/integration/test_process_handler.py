"""The SQS batch handler against moto S3, SQS and DynamoDB, with events built from messages
that a real S3 notification put on a real (moto) queue."""

import io
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import requests
from aws_helpers import (
    context,
    delete_succeeded,
    drain_test_event,
    embedded_aws,
    error_response,
    receive_event,
)
from botocore.awsrequest import AWSResponse
from PIL import Image

import handlers.http
import handlers.process
from core.aws import S3Storage, s3_client
from core.events import backfill_message
from core.pipeline import output_key, source_version
from core.settings import Settings, SettingsError
from handlers.runtime import Runtime
from infra.local.canned import canned_response
from infra.local.provision import Stack
from loadtest.synthetic import photo_like_bytes

JPEG = photo_like_bytes(900, 600, seed=1)
KEY_FIELDS = {
    "image_id", "status", "reason", "etag", "size", "format", "width", "height", "renditions",
    "event_time", "started_at", "finished_at", "timings_ms", "attempts",
}  # fmt: skip


def put(stack: Stack, key: str, data: bytes) -> str:
    etag = boto3.client("s3").put_object(Bucket=stack.raw_bucket, Key=key, Body=data)["ETag"]
    return str(etag).strip('"')


def item(stack: Stack, key: str, bucket: str | None = None) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb").Table(stack.table)
    image_id = f"{bucket or stack.raw_bucket}/{key}"
    return table.get_item(Key={"image_id": image_id}, ConsistentRead=True).get("Item")


def invoke(stack: Stack, wanted: int = 10, timeout_s: float = 60) -> tuple[dict, dict]:
    event = receive_event(stack, wanted)
    response = handlers.process.handler(event, context(timeout_s))
    delete_succeeded(stack, event, response)
    return event, response


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def queue_depth(stack: Stack) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_upload_is_rendered_stored_and_recorded(stack: Stack) -> None:
    drain_test_event(stack)
    key = "dir/a b+c%ü.jpg"
    etag = put(stack, key, JPEG)
    event, response = invoke(stack)
    assert len(event["Records"]) == 1
    sent_key = json.loads(event["Records"][0]["body"])["Records"][0]["s3"]["object"]["key"]
    assert "+b%2Bc%25%C3%BC.jpg" in sent_key  # S3 URL-encodes the key in the notification
    assert response == {"batchItemFailures": []}

    record = item(stack, key)
    assert record is not None
    assert KEY_FIELDS <= set(record)
    assert record["status"] == "PROCESSED" and record["reason"] is None
    assert record["etag"] == etag and record["size"] == len(JPEG)
    assert (record["format"], record["width"], record["height"]) == ("jpeg", 900, 600)
    assert set(record["timings_ms"]) == {"fetch", "decode", "render", "encode", "store"}
    assert record["attempts"] == 1
    assert record["started_at"] <= record["finished_at"]
    assert record["finished_at"].endswith("Z") and len(record["finished_at"]) == 24

    s3 = boto3.client("s3")
    names = {r["name"]: r for r in record["renditions"]}
    assert set(names) == {"thumb", "mobile", "720p", "1080p"}
    version = source_version(etag, Settings.from_env().profile)
    assert names["thumb"]["key"] == f"thumb/{key}.{version}.webp"
    for rendition in record["renditions"]:
        obj = s3.get_object(Bucket=stack.output_bucket, Key=rendition["key"])
        body = obj["Body"].read()
        assert obj["ContentType"] == "image/webp"
        assert obj["CacheControl"] == "public, max-age=31536000, immutable"
        assert obj["Metadata"]["source-bucket"] == stack.raw_bucket
        assert obj["Metadata"]["source-etag"] == etag
        assert len(body) == rendition["bytes"]
        with Image.open(io.BytesIO(body)) as image:
            assert image.size == (rendition["width"], rendition["height"])
    assert queue_depth(stack) == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "unsupported_format"),
        (JPEG[: len(JPEG) // 2], "corrupt"),
    ],
)
def test_rejected_images_are_recorded_failed_and_acknowledged(
    stack: Stack, data: bytes, reason: str
) -> None:
    drain_test_event(stack)
    put(stack, "uploads/poison.jpg", data)
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    record = item(stack, "uploads/poison.jpg")
    assert record is not None
    assert (record["status"], record["reason"]) == ("FAILED", reason)
    assert queue_depth(stack) == 0


@pytest.mark.parametrize(
    ("env", "data", "reason"),
    [
        ({"IMGPIPE_MAX_BYTES": "1000"}, JPEG, "too_large"),
        ({"IMGPIPE_MAX_PIXELS": "10000"}, JPEG, "too_many_pixels"),
    ],
)
def test_limits_come_from_settings(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], data: bytes, reason: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handlers.process.runtime.cache_clear()
    drain_test_event(stack)
    put(stack, "big.jpg", data)
    gets = count_calls(stack, "GetObject")
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    record = item(stack, "big.jpg")
    assert record is not None and (record["status"], record["reason"]) == ("FAILED", reason)
    if reason == "too_large":
        assert gets == [], "the event size alone must reject it, before any GetObject"


def test_too_many_frames_is_rejected(stack: Stack) -> None:
    drain_test_event(stack)
    frames = [Image.new("RGB", (2, 2), (i % 256, i // 256 * 60, 0)) for i in range(1002)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    put(stack, "anim.gif", buffer.getvalue())
    invoke(stack)
    record = item(stack, "anim.gif")
    assert record is not None and record["reason"] == "too_many_frames"


def count_calls(stack: Stack, operation: str) -> list[str]:
    """Record every call of ``operation`` made by the handler's own S3 client."""
    calls: list[str] = []
    client = handlers.process.runtime().storage.client
    client.meta.events.register(
        f"before-parameter-build.s3.{operation}", lambda params, **_: calls.append(params["Key"])
    )
    return calls


def test_duplicate_delivery_renders_and_puts_nothing(stack: Stack) -> None:
    drain_test_event(stack)
    put(stack, "dup.jpg", JPEG)
    event, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    first = item(stack, "dup.jpg")
    # SQS delivers at least once: the very same body arrives again.
    boto3.client("sqs").send_message(
        QueueUrl=stack.queue_url, MessageBody=event["Records"][0]["body"]
    )
    puts = count_calls(stack, "PutObject")
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    assert puts == []
    assert item(stack, "dup.jpg") == first


def test_replaced_object_makes_the_older_event_stale(stack: Stack) -> None:
    drain_test_event(stack)
    put(stack, "photo.jpg", JPEG)
    newer = photo_like_bytes(500, 500, seed=2)
    new_etag = put(stack, "photo.jpg", newer)
    puts = count_calls(stack, "PutObject")
    event, response = invoke(stack)
    assert len(event["Records"]) == 2 and response == {"batchItemFailures": []}
    record = item(stack, "photo.jpg")
    assert record is not None
    assert (record["etag"], record["width"]) == (new_etag, 500)
    # Only the current object's renditions are written: its thumb, and one object for mobile,
    # 720p and 1080p, which all keep 500 x 500 (identical bytes are stored once).
    assert len(puts) == 2
    assert len({r["key"] for r in record["renditions"]}) == 2


def test_an_older_event_never_overwrites_a_newer_result(stack: Stack) -> None:
    drain_test_event(stack)
    etag = put(stack, "order.jpg", JPEG)
    drain(stack)
    sqs = boto3.client("sqs")
    now = datetime.now(UTC)
    newer = backfill_message(stack.raw_bucket, "order.jpg", len(JPEG), etag, now)
    older = backfill_message(stack.raw_bucket, "order.jpg", len(JPEG), etag, now - timedelta(1))
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=newer)
    invoke(stack)
    stored = item(stack, "order.jpg")
    assert stored is not None and stored["status"] == "PROCESSED"
    # Force a re-render of the older event by making the stored result look unfinished.
    boto3.resource("dynamodb").Table(stack.table).update_item(
        Key={"image_id": stored["image_id"]},
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": "FAILED"},
    )
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=older)
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    after = item(stack, "order.jpg")
    assert after is not None
    assert after["event_time"] == stored["event_time"], "the older event was not written"


def drain(stack: Stack) -> None:
    """Drop whatever is queued (used where a test sends its own messages)."""
    while receive_event(stack)["Records"]:
        boto3.client("sqs").purge_queue(QueueUrl=stack.queue_url)


def test_source_missing_is_skipped_and_its_removal_recorded(stack: Stack) -> None:
    drain_test_event(stack)
    put(stack, "gone.jpg", JPEG)
    boto3.client("s3").delete_object(Bucket=stack.raw_bucket, Key="gone.jpg")
    _, response = invoke(stack)
    # The creation finds nothing to read (skipped); the removal leaves a tombstone.
    assert response == {"batchItemFailures": []}
    record = item(stack, "gone.jpg")
    assert record is not None and (record["status"], record["renditions"]) == ("DELETED", [])
    assert queue_depth(stack) == 0


def test_message_with_several_records_and_non_created_events(stack: Stack) -> None:
    drain_test_event(stack)
    etags = {key: put(stack, key, JPEG) for key in ("multi/1.jpg", "multi/2.jpg")}
    drain(stack)
    records = [
        json.loads(backfill_message(stack.raw_bucket, k, len(JPEG), e, datetime.now(UTC)))[
            "Records"
        ][0]
        for k, e in etags.items()
    ]
    restored = dict(records[0], eventName="ObjectRestore:Completed")
    body = json.dumps({"Records": [*records, restored]})
    boto3.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=body)
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    for key in etags:
        found = item(stack, key)
        assert found is not None and found["status"] == "PROCESSED"


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"hello": "world"}), json.dumps({"Records": [{"eventSource": "x"}]})],
)
def test_a_body_that_is_not_an_s3_event_fails(stack: Stack, body: str) -> None:
    drain_test_event(stack)
    boto3.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=body)
    event, response = invoke(stack)
    assert failed_ids(response) == {event["Records"][0]["messageId"]}


def test_throttled_fetch_is_retried_and_nothing_is_lost(stack: Stack) -> None:
    drain_test_event(stack)
    put(stack, "throttled.jpg", JPEG)
    client = handlers.process.runtime().storage.client
    hook = error_response("SlowDown", 503)
    client.meta.events.register_first("before-send.s3.GetObject", hook)
    event, response = invoke(stack)
    assert failed_ids(response) == {event["Records"][0]["messageId"]}
    assert item(stack, "throttled.jpg") is None
    client.meta.events.unregister("before-send.s3.GetObject", hook)
    # The message is still on the queue; make it visible now instead of after the timeout.
    sqs = boto3.client("sqs")
    sqs.change_message_visibility(
        QueueUrl=stack.queue_url,
        ReceiptHandle=event["Records"][0]["receiptHandle"],
        VisibilityTimeout=0,
    )
    event, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    assert event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    record = item(stack, "throttled.jpg")
    assert record is not None and record["status"] == "PROCESSED" and record["attempts"] == 2


def test_all_failed_batch_reports_every_record(stack: Stack) -> None:
    drain_test_event(stack)
    for i in range(4):
        put(stack, f"all/{i}.jpg", JPEG)
    client = handlers.process.runtime().storage.client
    client.meta.events.register_first(
        "before-send.s3.GetObject", error_response("InternalError", 500)
    )
    event, response = invoke(stack)
    assert len(event["Records"]) == 4
    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}
    assert queue_depth(stack) == 4, "nothing was acknowledged"


def test_no_record_starts_below_the_time_margin(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGPIPE_SAFETY_MARGIN_MS", "5000")
    handlers.process.runtime.cache_clear()
    drain_test_event(stack)
    put(stack, "late.jpg", JPEG)
    gets = count_calls(stack, "GetObject")
    event, response = invoke(stack, timeout_s=2)
    assert failed_ids(response) == {event["Records"][0]["messageId"]}
    assert gets == [] and item(stack, "late.jpg") is None


def test_mixed_batch_reports_exactly_the_transient_record(stack: Stack) -> None:
    """Acceptance: good images, a poison image, a duplicate and a transient S3 error."""
    drain_test_event(stack)
    put(stack, "mix/dup.jpg", JPEG)
    first, _ = invoke(stack)
    keys = [f"mix/good-{i}.jpg" for i in range(7)]
    for i, key in enumerate(keys):
        put(stack, key, photo_like_bytes(400 + i, 300, seed=i))
    put(stack, "mix/poison.jpg", b"GIF89a but not really")
    put(stack, "mix/transient.jpg", JPEG)
    boto3.client("sqs").send_message(
        QueueUrl=stack.queue_url, MessageBody=first["Records"][0]["body"]
    )
    client = handlers.process.runtime().storage.client

    def throttle_one(request: Any, **kwargs: Any) -> Any:
        if "transient.jpg" in request.url:
            return error_response("SlowDown", 503)(request)
        return None

    client.meta.events.register_first("before-send.s3.GetObject", throttle_one)
    event, response = invoke(stack)
    assert len(event["Records"]) == 10
    transient = [r["messageId"] for r in event["Records"] if "transient.jpg" in r["body"]]
    assert failed_ids(response) == set(transient)
    for key in keys + ["mix/dup.jpg"]:
        found = item(stack, key)
        assert found is not None and found["status"] == "PROCESSED", key
    poison = item(stack, "mix/poison.jpg")
    assert poison is not None and (poison["status"], poison["reason"]) == ("FAILED", "corrupt")
    assert item(stack, "mix/transient.jpg") is None
    assert queue_depth(stack) == 1


def test_output_bucket_equal_to_raw_bucket_refuses_to_start(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGPIPE_OUTPUT_BUCKET", stack.raw_bucket)
    handlers.process.runtime.cache_clear()
    with pytest.raises(SettingsError, match="must differ"):
        handlers.process.runtime()


def test_logs_and_metrics(stack: Stack, capfd: pytest.CaptureFixture[str]) -> None:
    drain_test_event(stack)
    put(stack, "obs/ok.jpg", JPEG)
    put(stack, "obs/bad.jpg", b"nope")
    stream = io.StringIO()
    json_lines = logging.StreamHandler(stream)
    json_lines.setFormatter(handlers.process.logger.registered_formatter)
    logging.getLogger("imgpipe").addHandler(json_lines)
    capfd.readouterr()
    try:
        invoke(stack)
    finally:
        logging.getLogger("imgpipe").removeHandler(json_lines)
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {line["key"] for line in logs} == {"obs/ok.jpg", "obs/bad.jpg"}
    assert all(line["message_id"] and line["reason"] for line in logs)
    assert {line["reason"] for line in logs} == {"none", "unsupported_format"}
    emf = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    names = {m["Name"] for e in emf for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ImagesProcessed", "ImagesFailed", "ProcessingMs", "BytesIn", "BytesOut"} <= names
    failed = [e for e in emf if "ImagesFailed" in e]
    assert failed and failed[0]["reason"] == "unsupported_format"


# ----------------------------------------------------------------------------------- IAM refusals
# In-process moto enforces no IAM: the refusals are S3's and DynamoDB's real error responses,
# answered through botocore's before-send hook and parsed by botocore as on AWS.


def dynamodb_error(code: str) -> Callable[..., AWSResponse]:
    """A ``before-send`` hook that answers as DynamoDB does (JSON 1.0, HTTP 400)."""
    body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "Message": "injected"})

    def hook(request: Any, **_: Any) -> AWSResponse:
        return canned_response(
            request.url, 400, body.encode(), {"Content-Type": "application/x-amz-json-1.0"}
        )

    return hook


def test_a_source_the_function_may_not_read_is_failed_access_denied(stack: Stack) -> None:
    drain_test_event(stack)
    put(stack, "denied/a.jpg", JPEG)
    client = handlers.process.runtime().storage.client
    client.meta.events.register_first(
        "before-send.s3.GetObject", error_response("AccessDenied", 403)
    )
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}, "a permanent refusal must not cycle"
    record = item(stack, "denied/a.jpg")
    assert record is not None
    assert (record["status"], record["reason"]) == ("FAILED", "access_denied")
    assert f"s3://{stack.raw_bucket}/denied/a.jpg" in record["detail"]
    assert "BackfillSourceBuckets" in record["detail"]
    assert queue_depth(stack) == 0


@pytest.mark.parametrize("operation", ["dynamodb.GetItem", "dynamodb.PutItem", "s3.PutObject"])
def test_a_refused_write_is_retried_so_the_role_alarms_through_the_dlq(
    stack: Stack, operation: str
) -> None:
    drain_test_event(stack)
    put(stack, "denied/write.jpg", JPEG)
    rt = handlers.process.runtime()
    if operation.startswith("s3."):
        client, hook = rt.storage.client, error_response("AccessDenied", 403)
    else:
        client, hook = rt.catalog.client, dynamodb_error("AccessDeniedException")
    client.meta.events.register_first(f"before-send.{operation}", hook)
    event, response = invoke(stack)
    # (In-process moto still runs a call whose answer a before-send hook replaces, so only the
    # handler's verdict is checked here, not what the table or bucket hold.)
    assert failed_ids(response) == {event["Records"][0]["messageId"]}
    assert queue_depth(stack) == 1


# ----------------------------------------------------------------------------------- output keys


def test_sources_outside_the_raw_bucket_get_their_own_output_keys(stack: Stack) -> None:
    """The same key in the raw bucket and two backfill sources: three disjoint sets of outputs."""
    drain_test_event(stack)
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    others = ["backfill-a", "backfill-b"]
    put(stack, "same.jpg", JPEG)  # notified, like any upload
    for bucket in others:
        s3.create_bucket(Bucket=bucket)
        etag = s3.put_object(Bucket=bucket, Key="same.jpg", Body=JPEG)["ETag"]
        message = backfill_message(bucket, "same.jpg", len(JPEG), etag, datetime.now(UTC))
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message)
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    outputs: dict[str, set[str]] = {}
    for bucket in [stack.raw_bucket, *others]:
        record = item(stack, "same.jpg", bucket)
        assert record is not None and record["status"] == "PROCESSED", bucket
        outputs[bucket] = {r["key"] for r in record["renditions"]}
    version = source_version(etag, Settings.from_env().profile)  # the same bytes everywhere
    assert f"thumb/same.jpg.{version}.webp" in outputs[stack.raw_bucket]
    assert all(f"thumb@{b}/same.jpg.{version}.webp" in outputs[b] for b in others)
    every = set().union(*outputs.values())
    # No source's output overwrote another's: three keys each (720p and 1080p both keep
    # 900 x 600, so they share one object).
    assert len(every) == 3 * 3
    listed = s3.list_objects_v2(Bucket=stack.output_bucket)["Contents"]
    assert {o["Key"] for o in listed} == every


# ------------------------------------------------------------------ SNS and EventBridge shapes


@pytest.mark.parametrize("raw", [False, True], ids=["sns-envelope", "raw-delivery"])
def test_an_upload_notified_through_sns_is_processed(stack: Stack, raw: bool) -> None:
    """S3 -> SNS -> SQS as moto delivers it: the body is SNS's envelope around S3's
    notification, or (raw message delivery on) the notification itself."""
    drain_test_event(stack)
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="uploads")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=stack.queue_arn,
        Attributes={"RawMessageDelivery": str(raw).lower()},
    )
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=stack.raw_bucket,
        NotificationConfiguration={
            "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    key = "sns/a b+c%#?.jpg"
    etag = put(stack, key, JPEG)
    event, response = invoke(stack)
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    assert len(bodies) == 2, "S3's test event, then the upload's"
    assert all((body.get("Type") == "Notification") is not raw for body in bodies)
    assert response == {"batchItemFailures": []}
    record = item(stack, key)
    assert record is not None and (record["status"], record["etag"]) == ("PROCESSED", etag)
    assert queue_depth(stack) == 0


def test_an_eventbridge_object_created_event_is_processed(stack: Stack) -> None:
    """The AWS docs' EventBridge example, with this upload's bucket, key, size and ETag."""
    drain_test_event(stack)
    key = "eb/a b+c%#?.jpg"
    etag = put(stack, key, JPEG)
    drain(stack)  # S3's own notification of the upload
    event = json.loads(
        (
            Path(__file__).parents[1] / "data/events/eventbridge-object-created.aws-docs.json"
        ).read_text(encoding="utf-8")
    )
    event["time"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    event["detail"]["bucket"]["name"] = stack.raw_bucket
    event["detail"]["object"] = {"key": key, "size": len(JPEG), "etag": etag}
    boto3.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(event))
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    record = item(stack, key)
    assert record is not None and (record["status"], record["etag"]) == ("PROCESSED", etag)


# ----------------------------------------------------------------------------------- metrics


def test_no_metric_is_printed_when_metrics_are_disabled(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """POWERTOOLS_METRICS_DISABLED (the local stack's console): a FAILED image's dimensioned
    metric must stay silent like the rest."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    drain_test_event(stack)
    put(stack, "quiet/ok.jpg", JPEG)
    put(stack, "quiet/bad.jpg", b"nope")
    capfd.readouterr()
    _, response = invoke(stack)
    assert response == {"batchItemFailures": []}
    failed = item(stack, "quiet/bad.jpg")
    assert failed is not None and failed["reason"] == "unsupported_format"
    assert '"_aws"' not in capfd.readouterr().out


# --------------------------------------------------------------------------------------- URLs

AWKWARD_KEY = "uploads/u1/a b+c%#?.jpg"  # every character a URL path must escape


def awkward_item(settings: Settings) -> dict[str, Any]:
    version = source_version("0123456789abcdef", settings.profile)
    key = output_key("thumb", AWKWARD_KEY, "webp", bucket="raw", raw_bucket="raw", version=version)
    return {"renditions": [{"name": "thumb", "key": key}]}


def test_cdn_urls_percent_encode_the_key() -> None:
    settings = replace(Settings.from_env({}), cdn_domain="d111.cloudfront.net")
    rt = Runtime(settings, S3Storage(s3_client(region="us-east-1")), None)  # type: ignore[arg-type]
    (rendition,) = handlers.http.with_urls(awkward_item(settings), rt)["renditions"]
    assert rendition["url"] == (
        "https://d111.cloudfront.net/thumb/uploads/u1/a%20b%2Bc%25%23%3F.jpg."
        f"{source_version('0123456789abcdef', settings.profile)}.webp"
    )
    url = urlsplit(rendition["url"])
    assert (url.query, url.fragment) == ("", "")  # "?" and "#" did not end the path
    assert unquote(url.path.removeprefix("/")) == rendition["key"]


def test_presigned_get_urls_fetch_the_object_with_the_awkward_key() -> None:
    """Against the embedded moto server over HTTP, as a browser would follow the URL."""
    with embedded_aws():
        s3 = s3_client()
        s3.create_bucket(Bucket="out")
        settings = replace(Settings.from_env({}), output_bucket="out")
        (rendition,) = awkward_item(settings)["renditions"]
        s3.put_object(Bucket="out", Key=rendition["key"], Body=b"rendered bytes")
        rt = Runtime(settings, S3Storage(s3), None)  # type: ignore[arg-type]
        (rendition,) = handlers.http.with_urls(awkward_item(settings), rt)["renditions"]
        assert "a%20b%2Bc%25%23%3F.jpg.01234567-" in rendition["url"]
        fetched = requests.get(rendition["url"], timeout=30)
    assert (fetched.status_code, fetched.content) == (200, b"rendered bytes")
