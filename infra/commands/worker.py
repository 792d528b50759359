"""`imgpipe worker --queue-url URL`: Lambda's SQS event source mapping, played against any queue.

A second deployment mode (EC2, ECS): the same handler, fed by worker processes instead of
Lambda. Settings (IMGPIPE_*) and AWS credentials come from the environment. Ctrl-C or SIGTERM
stops polling and lets the batches in flight finish.
"""

import argparse
import json
import os
import time
from typing import Any

from core.settings import Settings, SettingsError
from infra.commands.arguments import bounded
from infra.commands.aws_errors import describe
from infra.commands.signals import stop_signals
from infra.console import error, error_console

MAX_BATCH_SIZE = 10_000  # Lambda's limit for a standard queue
MAX_BATCH_WINDOW_S = 300.0  # Lambda's MaximumBatchingWindowInSeconds limit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="poll an SQS queue and run the handler", description=__doc__
    )
    parser.add_argument("--queue-url", required=True, metavar="URL",
                        help="the jobs queue to poll (any SQS queue the credentials can read)")  # fmt: skip
    parser.add_argument("--processes", type=bounded(int, 1, 1024), default=os.cpu_count() or 1,
                        metavar="N",
                        help="worker processes, each one Lambda instance (default: the CPU "
                        "count, %(default)s)")  # fmt: skip
    parser.add_argument("--batch-size", type=bounded(int, 1, MAX_BATCH_SIZE), default=10,
                        metavar="N", help="messages per invocation, at most "
                        f"{MAX_BATCH_SIZE:,}; over 10 needs --batch-window (default: %(default)s)")  # fmt: skip
    parser.add_argument("--batch-window", type=bounded(float, 0, MAX_BATCH_WINDOW_S),
                        default=0.0, metavar="S", help="seconds to wait for a fuller batch "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--function-timeout", type=bounded(float, 1, 900), default=120.0,
                        metavar="S", help="seconds per batch (default: %(default)s)")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout when stopped (logs go to stderr)")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Deferred: every command module is imported to build the parser, and boto3 and the
    # poller (Powertools) take over 1 s that `imgpipe render` must not pay.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from infra.worker.poller import PollerConfig
    from infra.worker.pool import WorkerPool

    if args.batch_size > 10 and args.batch_window <= 0:  # as Lambda's CreateEventSourceMapping
        error("--batch-size over 10 needs a --batch-window of at least 1 second")
        return 2
    try:
        Settings.from_env().check_processing()
        sqs = boto3.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["QueueArn"])
    except SettingsError as exc:
        error(exc)
        return 2
    except (BotoCoreError, ClientError) as exc:
        error(f"cannot use queue {args.queue_url}: {describe(exc)}")
        return 2
    config = PollerConfig(
        queue_url=args.queue_url,
        queue_arn=arn["Attributes"]["QueueArn"],
        region=sqs.meta.region_name,
        batch_size=args.batch_size,
        batching_window_s=args.batch_window,
        function_timeout_s=args.function_timeout,
    )  # the spawned workers inherit this environment: the settings and the credentials
    started = time.monotonic()
    with stop_signals() as stop:
        pool = WorkerPool(config, args.processes)
        pool.start()
        error_console.print(f"polling {args.queue_url} with {pool.size} processes (Ctrl-C to stop)",
                            soft_wrap=True)  # fmt: skip
        while not stop.wait(1.0):
            pool.supervise()
        error_console.print("stopping: finishing the batches in flight...")
        pool.stop()
    summary = summarise(pool.status(), args.queue_url, time.monotonic() - started)
    if args.json:
        print(json.dumps(summary))
    else:
        error_console.print(
            f"stopped after {summary['seconds']} s: {summary['acknowledged']} messages "
            f"acknowledged, {summary['left_for_retry']} left for a retry, "
            f"{summary['restarts']} worker restarts"
        )
    return 0


def summarise(status: dict[str, Any], queue_url: str, seconds: float) -> dict[str, Any]:
    """The `--json` summary: what the pool did before it stopped."""
    return {
        "queue_url": queue_url,
        "processes": len(status["workers"]),
        "acknowledged": status["acknowledged"],
        "left_for_retry": status["left_for_retry"],
        "restarts": status["restarts"],
        "seconds": round(seconds, 1),
    }
