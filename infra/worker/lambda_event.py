"""Build the exact event Lambda's SQS event source mapping hands to a function."""

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext


def queue_arn_from_url(queue_url: str, region: str, account: str = "123456789012") -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` for a queue URL (moto and AWS URLs alike)."""
    parts = queue_url.rstrip("/").split("/")
    account_id = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else account
    return f"arn:aws:sqs:{region}:{account_id}:{parts[-1]}"


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records[]`` entry from a ReceiveMessage result (with all attributes requested)."""
    attributes = message.get("Attributes", {})
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", "0"
            ),
        },
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn, region) for m in messages]}


def _message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API ``StringValue`` becomes Lambda's camel-cased ``stringValue``."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in attributes.items()
    }


class LambdaContext(PowertoolsLambdaContext):
    """A Lambda-like context with a working ``get_remaining_time_in_millis``."""

    def __init__(
        self,
        timeout_s: float,
        function_name: str = "imgpipe-process",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._deadline = clock() + timeout_s
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._memory_limit_in_mb = 2048
        self._invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]  # static upstream
        return max(0, int((self._deadline - self._clock()) * 1000))
