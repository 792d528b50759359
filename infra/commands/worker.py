"""`imgpipe worker --queue-url URL`: Lambda's SQS event source mapping, played against any queue.

A second deployment mode (EC2, ECS): the same handler, fed by worker processes instead of
Lambda. Settings (IMGPIPE_*) and AWS credentials come from the environment.
"""

import argparse
import os
import signal
import threading
from typing import Any

from core.settings import Settings, SettingsError
from infra.console import error_console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="poll an SQS queue and run the handler", description=__doc__
    )
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--batch-window", type=float, default=0.0, help="seconds")
    parser.add_argument("--function-timeout", type=float, default=120.0, help="seconds per batch")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Deferred: every command module is imported to build the parser, and boto3 and the
    # poller (Powertools) take over 1 s that `imgpipe render` must not pay.
    import boto3

    from infra.worker.poller import PollerConfig
    from infra.worker.pool import WorkerPool

    try:
        Settings.from_env().check_processing()
    except SettingsError as exc:
        error_console.print(f"[red]error:[/] {exc}")
        return 2
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["QueueArn"])
    config = PollerConfig(
        queue_url=args.queue_url,
        queue_arn=arn["Attributes"]["QueueArn"],
        region=sqs.meta.region_name,
        batch_size=args.batch_size,
        batching_window_s=args.batch_window,
        function_timeout_s=args.function_timeout,
    )  # the spawned workers inherit this environment: the settings and the credentials
    pool = WorkerPool(config, args.processes)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    pool.start()
    error_console.print(f"polling {args.queue_url} with {pool.size} processes (Ctrl-C to stop)")
    try:
        while not stopping.wait(1.0):
            pool.supervise()
    except KeyboardInterrupt:
        pass
    error_console.print("stopping: finishing the batches in flight...")
    pool.stop()
    return 0
