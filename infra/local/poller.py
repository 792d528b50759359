"""A local stand-in for Lambda's SQS event source mapping.

It long-polls, forms batches by size and batching window, builds the exact Lambda SQS event,
invokes ``handlers.process.handler`` with a Lambda-like context, and deletes only the records
that succeeded. Reported failures (and whole batches when the function raises) are left for
the visibility timeout to return, exactly as on AWS. Each worker is a separate process, just as
concurrent Lambda instances are.
"""

import logging
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.shared_flag import SharedFlag

log = logging.getLogger("imgpipe.poller")


@dataclass(frozen=True)
class PollerConfig:
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    function_timeout_s: float = 120.0
    env: Mapping[str, str | None] = field(default_factory=dict)  # None: remove the variable


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
    from infra.local.lambda_event import LambdaContext

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


READY, ACKED, RETRIED = 0, 1, 2


def apply_env(env: Mapping[str, str | None]) -> None:
    """Set (or, for ``None``, remove) this process's variables, as a function's runtime has them."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def worker_main(
    config: PollerConfig, stop: SharedFlag, counters: Any, busy: Any, slot: int
) -> None:
    """One worker process: poll, invoke, delete, until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    apply_env(config.env)
    # Lambda writes logs and EMF metrics to stdout; here that is the CLI's stdout, which
    # belongs to `--json` output, so a worker's stdout goes to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    import boto3

    from handlers.process import handler, runtime
    from infra.local.chaos import install_from_env
    from infra.local.lambda_event import sqs_event

    install_from_env(runtime().storage.client)
    sqs = boto3.client("sqs", region_name=config.region)
    with counters.get_lock():
        counters[READY] += 1  # imports done and settings checked, like a warm Lambda
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


class WorkerPool:
    """N worker processes; a worker that dies is replaced (its messages return on their own
    after the visibility timeout, as they would from a crashed Lambda instance)."""

    def __init__(self, config: PollerConfig, processes: int) -> None:
        self.config = config
        self.size = max(1, processes)
        self._context = multiprocessing.get_context("spawn")
        self._stop = SharedFlag(self._context)  # set from a SIGTERM handler too
        self.counters = self._context.Array("l", 3)  # READY, ACKED, RETRIED
        self.busy = self._context.Array("l", self.size)  # messages in each worker's batch
        self.workers: list[multiprocessing.process.BaseProcess] = []
        self.restarts = 0

    def start(self) -> None:
        self.workers = [self._spawn(slot) for slot in range(self.size)]

    def _spawn(self, slot: int) -> multiprocessing.process.BaseProcess:
        self.busy[slot] = 0
        process = self._context.Process(
            target=worker_main,
            args=(self.config, self._stop, self.counters, self.busy, slot),
            daemon=True,
        )
        process.start()
        return process

    def supervise(self) -> None:
        """Replace dead workers; call this periodically from the parent."""
        if self._stop.is_set():
            return
        for index, process in enumerate(self.workers):
            if not process.is_alive():
                log.warning(
                    "worker %s exited (%s); starting a new one", process.pid, process.exitcode
                )
                self.workers[index] = self._spawn(index)
                self.restarts += 1

    def wait_ready(self, timeout_s: float = 60) -> bool:
        """Block until every worker has imported the handler (a warm start)."""
        deadline = time.monotonic() + timeout_s
        while self.counters[READY] < self.size and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self.counters[READY] >= self.size)

    def status(self) -> dict[str, Any]:
        return {
            "workers": [
                {"pid": p.pid, "alive": p.is_alive(), "batch": self.busy[slot]}
                for slot, p in enumerate(self.workers)
            ],
            "acknowledged": self.counters[ACKED],
            "left_for_retry": self.counters[RETRIED],
            "restarts": self.restarts,
        }

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.workers if p.pid is not None]

    def stop(self, grace_s: float | None = None) -> None:
        """Stop polling, let the batches in flight finish, then exit."""
        self._stop.set()
        deadline = time.monotonic() + (
            grace_s if grace_s is not None else self.config.function_timeout_s
        )
        for process in self.workers:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.workers:
            if process.is_alive():  # past the function timeout: Lambda would cut it off too
                process.kill()
                process.join()
