"""A stand-in for Lambda's SQS event source mapping: one worker process's loop.

It long-polls, forms batches by size and batching window, builds the exact Lambda SQS event,
invokes ``handlers.process.handler`` with a Lambda-like context, and deletes only the records
that succeeded. Reported failures (and whole batches when the function raises) are left for
the visibility timeout to return, exactly as on AWS.
"""

import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.worker.environment import apply_env
from infra.worker.lambda_event import LambdaContext, sqs_event
from infra.worker.shared_flag import SharedFlag

log = logging.getLogger("imgpipe.poller")

# Indexes of the counters a pool shares with its workers.
READY, ACKED, RETRIED = 0, 1, 2


@dataclass(frozen=True)
class PollerConfig:
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    function_timeout_s: float = 120.0
    env: Mapping[str, str | None] = field(default_factory=dict)  # None: remove the variable
    env_defaults: Mapping[str, str] = field(default_factory=dict)  # only where unset or empty
    # Called in each worker with the handler's S3 client before the first batch (the local
    # stack's fault injection); it must pickle, as the config goes to spawned processes.
    setup: Callable[[Any], object] | None = None


def collect_batch(
    sqs: Any, config: PollerConfig, stopping: Callable[[], bool]
) -> list[dict[str, Any]]:
    """Wait (in 1 s long polls, so a stop is noticed) for a first message, then gather more
    until the batch is full or the batching window has passed."""
    messages: list[dict[str, Any]] = []
    deadline: float | None = None
    while len(messages) < config.batch_size and not stopping():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        wait = 1 if remaining is None else min(1, max(0, int(remaining)))
        received = sqs.receive_message(
            QueueUrl=config.queue_url,
            MaxNumberOfMessages=min(10, config.batch_size - len(messages)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if received and deadline is None:
            deadline = time.monotonic() + config.batching_window_s
        messages.extend(received)
        if not received and messages and wait == 0:
            break  # nothing more waiting right now and the window has no whole second left
    return messages


def invoke(handler: Callable[..., Any], event: dict[str, Any], timeout_s: float) -> set[str]:
    """Run the function; return the message ids to leave on the queue."""
    ids = {record["messageId"] for record in event["Records"]}
    try:
        response = handler(event, LambdaContext(timeout_s))
    except Exception:
        log.exception("function raised: the whole batch will be retried")
        return ids
    try:
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    except (AttributeError, KeyError, TypeError):
        log.error("invalid function response %r: the whole batch will be retried", response)
        return ids
    if not failed <= ids:
        log.error("response names unknown message ids: the whole batch will be retried")
        return ids
    return failed


def delete_succeeded(
    sqs: Any, queue_url: str, messages: list[dict[str, Any]], failed: set[str]
) -> None:
    entries = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
        for i, m in enumerate(messages)
        if m["MessageId"] not in failed
    ]
    for start in range(0, len(entries), 10):
        result = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries[start : start + 10])
        for failure in result.get("Failed", []):
            log.warning("delete failed (message will return): %s", failure)


def worker_main(
    config: PollerConfig, stop: SharedFlag, counters: Any, busy: Any, slot: int
) -> None:
    """One worker process: poll, invoke, delete, until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    apply_env(config.env, config.env_defaults)
    # Lambda writes logs and EMF metrics to stdout; here that is the CLI's stdout, which
    # belongs to `--json` output, so a worker's stdout goes to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    # Imported only now, once the function's environment is applied: the handler module
    # reads it at import (its metrics namespace, its runtime's settings and credentials). It
    # also costs about 310 ms (boto3, Powertools) that the parent `imgpipe worker` need not pay.
    import boto3

    from handlers.process import handler, runtime

    storage = runtime().storage  # settings checked and clients built, as a warm Lambda has
    if config.setup is not None:
        config.setup(storage.client)
    sqs = boto3.client("sqs", region_name=config.region)
    with counters.get_lock():
        counters[READY] += 1
    while not stop.is_set():
        messages = collect_batch(sqs, config, stop.is_set)
        if not messages:
            continue
        event = sqs_event(messages, config.queue_arn, config.region)
        busy[slot] = len(messages)
        failed = invoke(handler, event, config.function_timeout_s)
        delete_succeeded(sqs, config.queue_url, messages, failed)
        busy[slot] = 0
        with counters.get_lock():
            counters[ACKED] += len(messages) - len(failed)
            counters[RETRIED] += len(failed)
