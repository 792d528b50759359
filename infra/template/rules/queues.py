"""The jobs queue and its event source: visibility, partial batch failures, DLQ, encryption."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.template.evaluation import PSEUDO_PARAMETERS, logical_id
from infra.template.rules.policies import as_list, statements
from infra.template.rules.resolved import Finding, ResolvedTemplateRule, Resources


def _sqs_event_sources(res: Resources) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(function logical id, function properties, SQS event properties)."""
    for name, r in res.items():
        if r["Type"] == "AWS::Serverless::Function":
            for event in (r["Properties"].get("Events") or {}).values():
                if event.get("Type") == "SQS":
                    yield name, r["Properties"], event.get("Properties") or {}
        elif r["Type"] == "AWS::Lambda::EventSourceMapping":
            fn = res.get(logical_id(r["Properties"]["FunctionName"]), {})
            props = dict(r["Properties"], Queue=r["Properties"].get("EventSourceArn"))
            yield logical_id(r["Properties"]["FunctionName"]), fn.get("Properties", {}), props


class QueueVisibilityTimeout(ResolvedTemplateRule):
    id = "E9001"
    shortdesc = "Visibility timeout is at least 6 x the function timeout plus the window"
    description = (
        "Every SQS event source's queue keeps a message invisible for at least six times the "
        "function timeout plus the batching window (AWS's advice), so a slow batch is not "
        "delivered twice."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        found = False
        for fn_name, fn, event in _sqs_event_sources(resources):
            found = True
            queue = resources.get(logical_id(event.get("Queue")), {}).get("Properties", {})
            timeout = int(fn.get("Timeout", 3))
            window = int(event.get("MaximumBatchingWindowInSeconds", 0))
            visibility = int(queue.get("VisibilityTimeout", 30))
            if visibility < 6 * timeout + window:
                message = (
                    f"visibility timeout {visibility} < 6 x function timeout {timeout} "
                    f"+ batching window {window}"
                )
                yield Finding(fn_name, f"{fn_name}: {message}")
        if not found:
            yield Finding(None, "no SQS event source found")


class ReportBatchItemFailures(ResolvedTemplateRule):
    id = "E9002"
    shortdesc = "SQS events report batch item failures"
    description = (
        "Every SQS event source sets FunctionResponseTypes [ReportBatchItemFailures], so only "
        "the failed records of a batch are retried."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        for fn_name, _, event in _sqs_event_sources(resources):
            if "ReportBatchItemFailures" not in as_list(event.get("FunctionResponseTypes")):
                message = "SQS event lacks FunctionResponseTypes [ReportBatchItemFailures]"
                yield Finding(fn_name, f"{fn_name}: {message}")


class DeadLetterQueue(ResolvedTemplateRule):
    id = "E9003"
    shortdesc = "Event source queues redrive to a DLQ after 5 receives"
    description = (
        "Every SQS event source's queue has a RedrivePolicy with maxReceiveCount 5 to an SQS "
        "queue of this stack that keeps messages at least 14 days."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        for fn_name, _, event in _sqs_event_sources(resources):
            queue_id = logical_id(event.get("Queue"))
            queue = resources.get(queue_id, {}).get("Properties", {})
            redrive = queue.get("RedrivePolicy")
            if not isinstance(redrive, dict):
                yield Finding(queue_id, f"{queue_id} (source of {fn_name}) has no RedrivePolicy")
                continue
            if str(redrive.get("maxReceiveCount")) != "5":
                count = redrive.get("maxReceiveCount")
                yield Finding(queue_id, f"{queue_id}: maxReceiveCount is {count}, not 5")
            target = str(redrive.get("deadLetterTargetArn"))
            if not target.startswith("<"):
                yield Finding(queue_id, f"{queue_id}: DLQ {target} is not a queue of this stack")
                continue
            dlq = resources.get(logical_id(target), {})
            if dlq.get("Type") != "AWS::SQS::Queue":
                yield Finding(queue_id, f"{queue_id}: DLQ {target} is not an SQS queue")
            elif int(dlq["Properties"].get("MessageRetentionPeriod", 345600)) < 1209600:
                yield Finding(queue_id, f"{queue_id}: DLQ retention is below 14 days")


class QueuesEncryptedAndScoped(ResolvedTemplateRule):
    id = "E9009"
    shortdesc = "Queues are encrypted and only this stack's raw bucket may send"
    description = (
        "Every queue has server-side encryption; a queue policy allows only s3.amazonaws.com, "
        "with aws:SourceArn naming a bucket of this stack and aws:SourceAccount this account."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        for name, r in resources.items():
            if r["Type"] == "AWS::SQS::Queue":
                props = r["Properties"]
                if not (props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId")):
                    yield Finding(name, f"{name}: no server-side encryption")
            if r["Type"] == "AWS::SQS::QueuePolicy":
                for s in statements(r["Properties"].get("PolicyDocument")):
                    if s.get("Effect") == "Allow":
                        yield from _queue_grant_findings(resources, name, s)


def _queue_grant_findings(res: Resources, name: str, s: dict[str, Any]) -> Iterator[Finding]:
    if s.get("Principal") not in (
        {"Service": "s3.amazonaws.com"},
        {"Service": ["s3.amazonaws.com"]},
    ):
        yield Finding(name, f"{name}: queue policy allows {s.get('Principal')!r}")
    cond = s.get("Condition") or {}
    source_arn = (cond.get("ArnEquals") or cond.get("ArnLike") or {}).get("aws:SourceArn")
    source_account = (cond.get("StringEquals") or {}).get("aws:SourceAccount")
    if not source_arn or source_account != PSEUDO_PARAMETERS["AWS::AccountId"]:
        yield Finding(name, f"{name}: queue policy lacks aws:SourceArn / aws:SourceAccount")
    raw = [
        b
        for b in res.values()
        if b["Type"] == "AWS::S3::Bucket"
        and f"arn:aws:s3:::{b['Properties'].get('BucketName')}" == source_arn
    ]
    if not raw:
        yield Finding(name, f"{name}: aws:SourceArn {source_arn} is not a bucket of this stack")
