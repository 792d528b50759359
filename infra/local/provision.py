"""Create, on any AWS endpoint (moto locally), what ``infra/template.yaml`` describes.

The numbers (visibility timeout, redrive, retention, message size) come from the template
through ``infra.template_model``, so the two cannot drift apart silently.
"""

import json
import os
from dataclasses import dataclass
from typing import Any

import boto3

from infra.local.lambda_event import queue_arn_from_url


@dataclass(frozen=True)
class QueueSettings:
    function_timeout_s: int = 120
    visibility_timeout_s: int = 720
    max_receive_count: int = 5
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600
    max_message_bytes: int = 262_144
    batch_size: int = 10
    batching_window_s: int = 5


@dataclass(frozen=True)
class Stack:
    """Names and URLs of one provisioned stack, and the settings its functions get."""

    region: str
    raw_bucket: str
    output_bucket: str
    table: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    queue: QueueSettings

    def env(self) -> dict[str, str]:
        return {
            "IMGPIPE_RAW_BUCKET": self.raw_bucket,
            "IMGPIPE_OUTPUT_BUCKET": self.output_bucket,
            "IMGPIPE_TABLE": self.table,
            "IMGPIPE_QUEUE_URL": self.queue_url,
        }


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def provision(
    prefix: str = "imgpipe",
    queue: QueueSettings | None = None,
    cors_origins: tuple[str, ...] = (),
) -> Stack:
    """Create the buckets, queues, notification and table (idempotent on moto)."""
    queue = queue or QueueSettings()
    where = region()
    s3 = boto3.client("s3", region_name=where)
    sqs = boto3.client("sqs", region_name=where)
    dynamodb = boto3.client("dynamodb", region_name=where)
    raw, output, table = f"{prefix}-raw", f"{prefix}-processed", f"{prefix}-images"
    for bucket in (raw, output):
        _create_bucket(s3, bucket, where)
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq",
        Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_s)},
    )["QueueUrl"]
    dlq_arn = queue_arn_from_url(dlq_url, where)
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-jobs",
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.retention_s),
            "MaximumMessageSize": str(queue.max_message_bytes),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
            ),
        },
    )["QueueUrl"]
    queue_arn = queue_arn_from_url(queue_url, where)
    s3.put_bucket_notification_configuration(
        Bucket=raw,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"Id": "imgpipe-jobs", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    if cors_origins:
        s3.put_bucket_cors(
            Bucket=raw,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": list(cors_origins),
                        "AllowedMethods": ["POST"],
                        "AllowedHeaders": ["*"],
                        "MaxAgeSeconds": 3000,
                    }
                ]
            },
        )
    _create_table(dynamodb, table)
    return Stack(where, raw, output, table, queue_url, queue_arn, dlq_url, queue)


def _create_bucket(s3: Any, name: str, where: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if where != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": where}
    try:
        s3.create_bucket(**kwargs)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def _create_table(dynamodb: Any, name: str) -> None:
    try:
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass
