"""Estimated AWS cost per million images, from a load test's measurements.

Assumptions (printed with every estimate):

* Lambda bills GB-seconds = compute time x memory. The compute time per image is the measured
  per-image processing time (``finished_at - started_at``) on one local core, scaled by
  ``compute_scale``. At 2048 MB a function gets about 1.15 vCPU, so one local core is taken as
  roughly one Lambda vCPU share (scale 1.0); a slower core or smaller memory size needs a factor.
* Records arrive in full batches of ``batch_size`` (a bulk load): one Lambda request, one SQS
  ReceiveMessage and one DeleteMessageBatch per batch, one SendMessage per image. SQS bills
  every 64 KB chunk of a payload as one request. Idle long polling by the event source mapping
  is not included.
* S3: one GET of the source and one PUT per rendition. The client's own upload is not counted.
* DynamoDB on-demand: one strongly consistent read (the duplicate check, 1 RRU per 4 KB) and
  one conditional write (1 WRU per 1 KB of item) per image.
* No free tier, no data transfer (S3 to Lambda in one region is free), no CloudFront, no logs.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MILLION = 1_000_000
SQS_CHUNK_BYTES = 64 * 1024
ARCHITECTURES = ("arm64", "x86_64")


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices in USD (2025). Override any of them from the command line."""

    lambda_gb_s_arm64: float = 0.0000133334
    lambda_gb_s_x86_64: float = 0.0000166667
    lambda_requests_per_million: float = 0.20
    sqs_requests_per_million: float = 0.40  # standard queue, beyond the free million
    s3_put_per_thousand: float = 0.005  # PUT, COPY, POST, LIST (S3 Standard)
    s3_get_per_thousand: float = 0.0004  # GET, SELECT and all other requests
    dynamodb_write_per_million: float = 0.625  # on-demand write request units
    dynamodb_read_per_million: float = 0.125  # on-demand read request units

    def lambda_gb_s(self, architecture: str) -> float:
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
        return self.lambda_gb_s_arm64 if architecture == "arm64" else self.lambda_gb_s_x86_64

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class CostInputs:
    """What the run measured (per image) and how the function is configured."""

    compute_ms_per_image: float
    puts_per_image: float = 4.0  # distinct rendition keys: identical outputs share one
    item_bytes: float = 1024.0
    message_bytes: float = 1500.0
    memory_mb: int = 2048
    architecture: str = "arm64"
    batch_size: float = 10.0
    compute_scale: float = 1.0


@dataclass(frozen=True)
class FunctionConfig:
    """How the function would be configured on AWS (the command line's cost options)."""

    memory_mb: int
    architecture: str
    compute_scale: float
    batch_size: float | None = None  # None: the stack's


@dataclass(frozen=True)
class CostLine:
    component: str
    quantity_per_image: float
    unit: str
    unit_price: float  # USD per unit
    per_million: float  # USD per million images


@dataclass(frozen=True)
class CostEstimate:
    inputs: CostInputs
    prices: Prices
    lines: list[CostLine]
    assumptions: list[str] = field(default_factory=list)

    @property
    def per_million(self) -> float:
        return sum(line.per_million for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": asdict(self.inputs),
            "prices": asdict(self.prices),
            "lines": [asdict(line) for line in self.lines],
            "per_million": self.per_million,
            "assumptions": list(self.assumptions),
        }


def sqs_chunks(payload_bytes: float) -> int:
    """SQS bills each started 64 KB of a request's payload as one request."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def write_units(item_bytes: float) -> int:
    return max(1, math.ceil(item_bytes / 1024))


def read_units(item_bytes: float) -> int:
    """Strongly consistent read: 1 RRU per started 4 KB (1 even when the item is absent)."""
    return max(1, math.ceil(item_bytes / 4096))


def estimate(inputs: CostInputs, prices: Prices | None = None) -> CostEstimate:
    prices = prices or Prices()
    if inputs.batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batch = inputs.batch_size
    gb_s = inputs.compute_ms_per_image * inputs.compute_scale / 1000 * inputs.memory_mb / 1024
    sqs_requests = (
        sqs_chunks(inputs.message_bytes)  # send
        + sqs_chunks(inputs.message_bytes * batch) / batch  # receive, one per batch
        + 1 / batch  # DeleteMessageBatch
    )
    quantities = [
        (
            f"Lambda compute ({inputs.architecture}, {inputs.memory_mb} MB)",
            gb_s,
            "GB-s",
            prices.lambda_gb_s(inputs.architecture),
        ),
        ("Lambda requests", 1 / batch, "request", prices.lambda_requests_per_million / MILLION),
        (
            "SQS requests (send, receive, delete)",
            sqs_requests,
            "request",
            prices.sqs_requests_per_million / MILLION,
        ),
        (
            "S3 PUT (renditions)",
            inputs.puts_per_image,
            "request",
            prices.s3_put_per_thousand / 1000,
        ),
        ("S3 GET (source)", 1.0, "request", prices.s3_get_per_thousand / 1000),
        (
            "DynamoDB writes",
            float(write_units(inputs.item_bytes)),
            "WRU",
            prices.dynamodb_write_per_million / MILLION,
        ),
        (
            "DynamoDB reads",
            float(read_units(inputs.item_bytes)),
            "RRU",
            prices.dynamodb_read_per_million / MILLION,
        ),
    ]
    lines = [
        CostLine(name, quantity, unit, price, quantity * price * MILLION)
        for name, quantity, unit, price in quantities
    ]
    assumptions = [
        (
            f"Lambda GB-s = compute ms x memory: {inputs.compute_ms_per_image:.0f} ms measured per "
            f"image x scale {inputs.compute_scale:g} x {inputs.memory_mb / 1024:g} GB"
        ),
        "one local core ~ the ~1.15 vCPU share Lambda gives at 2048 MB (hence scale 1.0)",
        (
            f"full batches of {batch:g}: one Lambda request, one ReceiveMessage and one "
            "DeleteMessageBatch per batch; one SendMessage per image; 64 KB chunks billed as requests"
        ),
        (
            f"S3: one GET per image, {inputs.puts_per_image:.2f} PUTs (distinct renditions); "
            "the client's upload is not counted"
        ),
        (
            f"DynamoDB on-demand: item ~{inputs.item_bytes:.0f} B -> "
            f"{write_units(inputs.item_bytes)} WRU per write, one consistent read per image"
        ),
        "us-east-1 list prices (2025), no free tier, no data transfer, logs or CloudFront",
    ]
    return CostEstimate(inputs, prices, lines, assumptions)


def dynamo_item_bytes(item: Any) -> int:
    """Approximate DynamoDB item size: attribute names plus values (numbers ~ 1 B per 2 digits,
    3 B overhead per list or map plus 1 B per element)."""
    if isinstance(item, dict):
        return 3 + sum(len(str(k).encode()) + 1 + dynamo_item_bytes(v) for k, v in item.items())
    if isinstance(item, list):
        return 3 + sum(1 + dynamo_item_bytes(v) for v in item)
    if isinstance(item, bool) or item is None:
        return 1
    if isinstance(item, int | float):
        digits = len(str(item).replace("-", "").replace(".", "").lstrip("0")) or 1
        return 1 + math.ceil(digits / 2)
    return len(str(item).encode())


def top_level_item_bytes(item: dict[str, Any]) -> int:
    """Size of a table item (the top-level map has no list/map overhead)."""
    return sum(len(k.encode()) + dynamo_item_bytes(v) for k, v in item.items())
