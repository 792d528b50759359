"""Create, on any AWS endpoint (moto locally), what ``infra/template.yaml`` describes (with
the user pool when AuthMode is cognito).

Names, numbers, tags, CORS rules, notifications and the functions' IAM roles all come from the
template through ``infra.template``, resolved for the given parameters, so the two cannot
drift apart silently. Bucket names are the template's own (``{BucketPrefix}-raw-{account}-
{region}``): the template builds ARNs from them with ``!Sub``.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from core.aws import s3_client
from infra.local.cognito import create_user_pool
from infra.local.iam import ACCOUNT_ID, create_roles
from infra.template.evaluation import Evaluator, StackSettings, stack_settings
from infra.template.loading import load_template
from infra.worker.lambda_event import queue_arn_from_url

PROCESS_FUNCTION, API_FUNCTION = "ProcessFunction", "ApiFunction"
PROCESS_NOW_FUNCTION = "ProcessNowFunction"  # POST /process, only with OnDemandProcessing


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
    roles: Mapping[str, str] = field(default_factory=dict)  # function logical id -> role ARN
    resources: Mapping[str, Any] = field(default_factory=dict)  # the resolved template

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
    parameters: Mapping[str, str] | None = None,
    session: Any = None,
) -> Stack:
    """Create the buckets, queues, notification, table and roles (idempotent on moto), with
    ``session``'s clients (anything with ``client()`` and ``region_name``; by default boto3's
    default session and the environment's region)."""
    factory: Any = session or boto3
    where = session.region_name if session is not None else region()
    params = {"BucketPrefix": prefix, **(parameters or {})}
    pseudo = {"AWS::Region": where, "AWS::StackName": prefix, "AWS::AccountId": ACCOUNT_ID}
    template = load_template()
    settings = settings or stack_settings(template, params)
    first = Evaluator(template, params, pseudo=pseudo).resources()
    s3: Any = s3_client(session=session, region=where)
    sqs: Any = factory.client("sqs", region_name=where)
    raw = str(first["RawBucket"]["Properties"]["BucketName"])
    output = str(first["ProcessedBucket"]["Properties"]["BucketName"])
    table = f"{prefix}-images"
    for bucket in (raw, output):
        create_bucket(s3, bucket, where)
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dlq", Attributes=settings.dlq_attributes)[
        "QueueUrl"
    ]
    dlq_arn = queue_arn_from_url(dlq_url, where)
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-jobs",
        Attributes={**settings.queue_attributes, "RedrivePolicy": settings.redrive_policy(dlq_arn)},
        tags=_tags(first["JobsQueue"]["Properties"]),
    )["QueueUrl"]
    queue_arn = queue_arn_from_url(queue_url, where)
    dynamodb = factory.client("dynamodb", region_name=where)
    _create_table(dynamodb, table, first["ImagesTable"]["Properties"])
    physical = _physical(where, prefix, raw, output, table, queue_url, queue_arn, dlq_url, dlq_arn)
    physical |= create_user_pool(factory.client("cognito-idp", region_name=where), first)
    resources = Evaluator(template, params, physical, pseudo).resources()
    _configure_raw_bucket(s3, raw, resources["RawBucket"]["Properties"])
    roles = create_roles(factory.client("iam", region_name=where), resources, prefix)
    return Stack(where, raw, output, table, queue_url, queue_arn, dlq_url, settings,
                 roles, resources)  # fmt: skip


def _physical(
    where: str, prefix: str, raw: str, output: str, table: str,
    queue_url: str, queue_arn: str, dlq_url: str, dlq_arn: str,
) -> dict[str, str]:  # fmt: skip
    """What CloudFormation's ``Ref`` and ``GetAtt`` give for the resources created here."""
    logs = f"arn:aws:logs:{where}:{ACCOUNT_ID}:log-group:/imgpipe/{prefix}"
    return {
        "RawBucket": raw, "RawBucket.Arn": f"arn:aws:s3:::{raw}",
        "ProcessedBucket": output, "ProcessedBucket.Arn": f"arn:aws:s3:::{output}",
        "ImagesTable": table,
        "ImagesTable.Arn": f"arn:aws:dynamodb:{where}:{ACCOUNT_ID}:table/{table}",
        "JobsQueue": queue_url, "JobsQueue.Arn": queue_arn,
        "JobsQueue.QueueName": queue_arn.rsplit(":", 1)[-1],
        "DeadLetterQueue": dlq_url, "DeadLetterQueue.Arn": dlq_arn,
        "DeadLetterQueue.QueueName": dlq_arn.rsplit(":", 1)[-1],
        "ProcessLogGroup.Arn": f"{logs}/process:*", "ApiLogGroup.Arn": f"{logs}/api:*",
    }  # fmt: skip


def _tags(queue: Mapping[str, Any]) -> dict[str, str]:
    return {str(tag["Key"]): str(tag["Value"]) for tag in queue.get("Tags") or []}


def _configure_raw_bucket(s3: Any, bucket: str, properties: Mapping[str, Any]) -> None:
    """The template's notification and CORS rules on the raw bucket."""
    notification = properties.get("NotificationConfiguration") or {}
    queues = []
    for index, entry in enumerate(notification.get("QueueConfigurations") or []):
        config: dict[str, Any] = {"Id": f"jobs-{index}", "QueueArn": entry["Queue"],
                                  "Events": [entry["Event"]]}  # fmt: skip
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")
        if rules:
            config["Filter"] = {"Key": {"FilterRules": rules}}
        queues.append(config)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues}
    )
    rules = (properties.get("CorsConfiguration") or {}).get("CorsRules") or []
    if rules:
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [_cors_rule(rule) for rule in rules]},
        )


def _cors_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's ``CorsRules`` entry as the S3 API's ``CORSRule``."""
    names = {"MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders", "Id": "ID"}
    return {names.get(key, key): value for key, value in rule.items()}


def post_rule(resources: Mapping[str, Any], bucket_logical_id: str = "RawBucket") -> dict[str, Any]:
    """The bucket's CORS rule for POST (browser uploads), as the template writes it."""
    properties = resources[bucket_logical_id]["Properties"]
    rules = (properties.get("CorsConfiguration") or {}).get("CorsRules") or []
    return next((dict(rule) for rule in rules if "POST" in rule.get("AllowedMethods", [])), {})


def create_bucket(s3: Any, name: str, where: str) -> None:
    """Create ``name`` in region ``where``; an existing bucket of ours is fine."""
    kwargs: dict[str, Any] = {"Bucket": name}
    if where != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": where}
    try:
        s3.create_bucket(**kwargs)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass


def _create_table(dynamodb: Any, name: str, properties: Mapping[str, Any]) -> None:
    """The images table with the template's key schema and TimeToLiveSpecification."""
    try:
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=list(properties["AttributeDefinitions"]),
            KeySchema=list(properties["KeySchema"]),
            BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=dict(ttl))
