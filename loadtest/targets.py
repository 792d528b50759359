"""Where a load test sends its images: a deployed stack (from its CloudFormation outputs) or
the embedded local stack."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

STACK_OUTPUTS = {
    "raw_bucket": "RawBucketName",
    "output_bucket": "ProcessedBucketName",
    "queue_url": "QueueUrl",
    "dlq_url": "DeadLetterQueueUrl",
    "table": "TableName",
}


@dataclass(frozen=True)
class Target:
    name: str
    region: str
    raw_bucket: str
    output_bucket: str
    table: str
    queue_url: str
    dlq_url: str
    batch_size: int = 10
    embedded: bool = False


def target_from_stack(name: str, region: str | None = None) -> Target:
    """Read a deployed stack's CloudFormation outputs (see ``infra/template.yaml``)."""
    client: Any = boto3.client("cloudformation", region_name=region)
    stacks = client.describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in STACK_OUTPUTS.values() if key not in outputs]
    if missing:
        raise LookupError(f"stack {name} has no output(s) {', '.join(missing)}")
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stacks[0].get("Parameters", [])}
    batch = int(params.get("BatchSize") or 10)
    where = region or client.meta.region_name
    values = {field_: outputs[key] for field_, key in STACK_OUTPUTS.items()}
    return Target(name=name, region=where, batch_size=batch, **values)


def target_from_local(local: "LocalStack") -> Target:
    stack = local.resources
    return Target(
        name="embedded (moto on loopback)",
        region=stack.region,
        raw_bucket=stack.raw_bucket,
        output_bucket=stack.output_bucket,
        table=stack.table,
        queue_url=stack.queue_url,
        dlq_url=stack.dlq_url,
        batch_size=stack.settings.batch_size,
        embedded=True,
    )
