"""Create, on any AWS endpoint (moto locally), what ``infra/template.yaml`` describes.

The numbers (visibility timeout, redrive, retention, message size) come from the template
through ``infra.template_model``, so the two cannot drift apart silently.
"""

import os
from dataclasses import dataclass
from typing import Any

import boto3

from infra.local.lambda_event import queue_arn_from_url
from infra.template_model import StackSettings, stack_settings


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
    settings: StackSettings

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
    settings: StackSettings | None = None,
    cors_origins: tuple[str, ...] = (),
) -> Stack:
    """Create the buckets, queues, notification and table (idempotent on moto)."""
    settings = settings or stack_settings()
    where = region()
    s3: Any = boto3.client("s3", region_name=where)
    sqs: Any = boto3.client("sqs", region_name=where)
    dynamodb: Any = boto3.client("dynamodb", region_name=where)
    raw, output, table = f"{prefix}-raw", f"{prefix}-processed", f"{prefix}-images"
    for bucket in (raw, output):
        create_bucket(s3, bucket, where)
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq",
        Attributes=settings.dlq_attributes,
    )["QueueUrl"]
    dlq_arn = queue_arn_from_url(dlq_url, where)
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-jobs",
        Attributes={**settings.queue_attributes, "RedrivePolicy": settings.redrive_policy(dlq_arn)},
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
    return Stack(where, raw, output, table, queue_url, queue_arn, dlq_url, settings)


def create_bucket(s3: Any, name: str, where: str) -> None:
    """Create ``name`` in region ``where``; an existing bucket of ours is fine."""
    kwargs: dict[str, Any] = {"Bucket": name}
    if where != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": where}
    try:
        s3.create_bucket(**kwargs)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
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
