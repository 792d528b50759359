"""``parse_body`` on the event shapes of others (tests/data/events, with their provenance): S3
notifications bare or in an SNS envelope, and EventBridge ``Object Created`` events, all giving
the same source object, and their removals (``ObjectRemoved:*``, EventBridge ``Object
Deleted``) a removed one; every other shape still fails, so its message reaches the DLQ."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core.events import NotAnS3Event, SourceObject, parse_body

EVENTS = Path(__file__).parents[1] / "data" / "events"
SPECIAL_KEY = "uploads/a b+c%#?.jpg"  # the key the SAM events were generated with


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


SAM_PUT = load("s3-put.sam.json")
SAM_SNS = load("sns-notification.sam.json")
DOCS_SNS = load("sns-to-sqs.aws-docs.json")
DOCS_EVENTBRIDGE = load("eventbridge-object-created.aws-docs.json")
DOCS_EVENTBRIDGE_DELETED = load("eventbridge-object-deleted.aws-docs.json")
SAM_DELETE = load("s3-delete.sam.json")

SAM_SOURCE = SourceObject(
    bucket="imgpipe-raw",
    key=SPECIAL_KEY,
    size=1024,
    etag="0123456789abcdef0123456789abcdef",
    event_time="1970-01-01T00:00:00.000Z",
    sequencer="0A1B2C3D4E5F678901",
)


def sns_envelope(message: Any) -> dict[str, Any]:
    """The AWS docs' SNS-to-SQS envelope, carrying ``message`` as its Message string."""
    return {**DOCS_SNS, "Message": json.dumps(message)}


def eventbridge(**detail_object: Any) -> dict[str, Any]:
    event = copy.deepcopy(DOCS_EVENTBRIDGE)
    event["detail"]["object"].update(detail_object)
    return event


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(SAM_PUT),  # S3 -> SQS, and S3 -> SNS -> SQS with raw message delivery on
        json.dumps(SAM_SNS["Records"][0]["Sns"]),  # S3 -> SNS -> SQS, raw delivery off (SAM)
        json.dumps(sns_envelope(SAM_PUT)),  # the same, in the AWS docs' envelope
    ],
    ids=["bare-or-raw-delivery", "sns-envelope-sam", "sns-envelope-docs"],
)
def test_an_s3_notification_bare_or_in_sns_gives_one_source(body: str) -> None:
    assert parse_body(body) == [SAM_SOURCE]


def test_the_eventbridge_docs_example_gives_its_source() -> None:
    assert parse_body(json.dumps(DOCS_EVENTBRIDGE)) == [
        SourceObject(
            bucket="amzn-s3-demo-bucket1",
            key="example-key",
            size=5,
            etag="b1946ac92492d2347c6235b4d2611184",
            event_time="2021-11-12T00:00:00.000Z",
            version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            sequencer="617f08299329d189",
        )
    ]


def test_eventbridge_and_a_notification_of_the_same_upload_give_the_same_source() -> None:
    """EventBridge sends the key as it is: ``+``, ``%`` and spaces survive unchanged."""
    event = eventbridge(key=SPECIAL_KEY, size=1024, etag=SAM_SOURCE.etag, sequencer=None)
    event["detail"]["object"].pop("version-id")
    event["detail"]["bucket"]["name"] = SAM_SOURCE.bucket
    event["time"] = "1970-01-01T00:00:00Z"
    (source,) = parse_body(json.dumps(event))
    assert source == SourceObject(**{**SAM_SOURCE.__dict__, "sequencer": None})


def test_eventbridge_in_an_sns_envelope_is_understood_too() -> None:
    assert parse_body(json.dumps(sns_envelope(DOCS_EVENTBRIDGE))) == parse_body(
        json.dumps(DOCS_EVENTBRIDGE)
    )


# A removal has no size or ETag (SAM's) or only the deleted version's (EventBridge's).
SAM_REMOVAL = SourceObject(
    bucket="imgpipe-raw",
    key=SPECIAL_KEY,
    size=0,
    etag="",
    event_time="1970-01-01T00:00:00.000Z",
    sequencer="0A1B2C3D4E5F678901",
    removed=True,
)


@pytest.mark.parametrize(
    "body",
    [json.dumps(SAM_DELETE), json.dumps(sns_envelope(SAM_DELETE))],
    ids=["delete", "sns-delete"],
)
def test_an_s3_removal_bare_or_in_sns_gives_a_removed_source(body: str) -> None:
    assert parse_body(body) == [SAM_REMOVAL]


def test_the_eventbridge_docs_deletion_gives_a_removed_source() -> None:
    assert parse_body(json.dumps(DOCS_EVENTBRIDGE_DELETED)) == [
        SourceObject(
            bucket="amzn-s3-demo-bucket1",
            key="example-key",
            size=0,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            event_time="2021-11-12T00:00:00.000Z",
            version_id="1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
            sequencer="617f0837b476e463",
            removed=True,
        )
    ]


def test_a_removal_orders_after_the_creation_it_follows() -> None:
    """The same ordering rule as creations: event time, then S3's sequencer as a number."""
    created = dict(SAM_PUT)
    created["Records"] = [copy.deepcopy(SAM_PUT["Records"][0])]
    created["Records"][0]["s3"]["object"]["sequencer"] = "0A1B2C3D4E5F678900"
    (creation,) = parse_body(json.dumps(created))
    (removal,) = parse_body(json.dumps(SAM_DELETE))
    assert creation.order < removal.order and not creation.removed


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**DOCS_EVENTBRIDGE, "detail-type": "Object Restore Completed"}),
        json.dumps(
            {
                **SAM_DELETE,
                "Records": [{**SAM_DELETE["Records"][0], "eventName": "ObjectRestore:Completed"}],
            }
        ),
        json.dumps(sns_envelope({"Service": "Amazon S3", "Event": "s3:TestEvent"})),
    ],
    ids=["eventbridge-restored", "notification-restored", "sns-test-event"],
)
def test_other_s3_events_are_acknowledged_without_sources(body: str) -> None:
    assert parse_body(body) == []


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(DOCS_SNS),  # an SNS envelope around "Hello world!"
        json.dumps(sns_envelope(DOCS_SNS)),  # an envelope in an envelope
        json.dumps(SAM_SNS),  # Lambda's SNS event (Records[].Sns): not what SQS delivers
        json.dumps({**DOCS_EVENTBRIDGE, "source": "aws.ec2"}),
        json.dumps({k: v for k, v in DOCS_EVENTBRIDGE.items() if k != "detail"}),
        json.dumps(eventbridge() | {"time": 1636675200.0}),  # epoch seconds, not ISO
        json.dumps({**DOCS_SNS, "Message": json.dumps([SAM_PUT])}),
    ],
    ids=[
        "sns-not-s3",
        "sns-in-sns",
        "lambda-sns-event",
        "eventbridge-other-source",
        "eventbridge-no-detail",
        "eventbridge-epoch-time",
        "sns-message-not-object",
    ],
)
def test_every_other_shape_still_fails(body: str) -> None:
    with pytest.raises(NotAnS3Event):
        parse_body(body)
