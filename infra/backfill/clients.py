"""The backfill's boto3 clients, and the AWS error codes it acts on."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import boto3
import botocore
from botocore.config import Config

from core.aws import s3_client
from infra.backfill.options import Options

MISSING_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
# Errors that no retry fixes and that would hit every key: the run stops (state saved).
FATAL_CODES: Final = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied",
        "AccessDeniedException", "InvalidClientTokenId", "UnrecognizedClientException",
        "SignatureDoesNotMatch", "ExpiredToken", "InvalidSecurity", "KMS.AccessDeniedException",
    }
)  # fmt: skip


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any | None = None
    on_close: Callable[[], None] | None = None  # e.g. a benchmark's report

    def close(self) -> None:
        for client in (self.s3, self.sqs, self.dynamodb):
            if client is not None:
                client.close()
        if self.on_close is not None:
            self.on_close()


# Sender processes build their own clients with it: a module-level function, so that it pickles.
ClientFactory = Callable[[Options], Clients]


def sqs_user_agent() -> str:
    """A fixed User-Agent for the SQS client. By default botocore rebuilds and sanitises its
    full User-Agent twice per call, about a fifth of a SendMessageBatch's client CPU here."""
    return f"imgpipe-backfill Botocore/{botocore.__version__}"


def make_clients(options: Options, session: Any | None = None) -> Clients:
    """Pooled clients sized for the senders. The SQS client is tuned for its hot path: no
    client-side parameter validation (the entries are built here) and a fixed User-Agent."""
    boto: Any = session or boto3.session.Session()
    senders = options.share(options.concurrency)
    pool = senders + options.share(options.head_concurrency) + 4
    s3 = s3_client(pool, session=boto)
    sqs = boto.client(
        "sqs",
        config=Config(
            max_pool_connections=senders + 4,
            retries={"mode": "standard"},
            parameter_validation=False,
            user_agent=sqs_user_agent(),
        ),
    )
    dynamodb = None
    if options.reads_table:
        dynamodb = boto.client("dynamodb", config=Config(max_pool_connections=senders + 4))
    return Clients(s3=s3, sqs=sqs, dynamodb=dynamodb)


def error_code(exc: BaseException) -> str:
    """An AWS error's code, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


def describe_error(exc: BaseException) -> str:
    code = error_code(exc)
    text = str(exc) or type(exc).__name__
    return text if code == type(exc).__name__ else f"{code}: {text}"
