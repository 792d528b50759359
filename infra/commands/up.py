"""`imgpipe up`: the embedded stack, workers, HTTP API and upload page, until Ctrl-C
(or SIGTERM)."""

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.console import console, error_console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up", help="run the embedded stack with the API and upload page", description=__doc__
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port for the page and API")
    parser.add_argument("--aws-port", type=int, default=0, help="moto port (default: free port)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--function-timeout", type=float, default=None, help="seconds (default: the template's)"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="seconds before a failed message returns (default: the template's); tests shorten it",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from infra.local.http_api import LocalHttpServer
    from infra.local.stack import LocalStack, StackOptions

    origin = f"http://127.0.0.1:{args.port}"
    os.environ["IMGPIPE_CORS_ORIGINS"] = origin
    options = StackOptions(
        workers=args.workers,
        port=args.aws_port,
        function_timeout_s=args.function_timeout,
        visibility_timeout_s=args.visibility_timeout,
        cors_origins=(origin,),
    )
    local = LocalStack(options)
    try:
        server = LocalHttpServer(args.port, local.status)
    except OSError as exc:
        error_console.print(f"[red]error:[/] cannot listen on {origin}: {exc.strerror}")
        return 2
    with local, stop_signals() as stop:  # handled before "up" is announced: no lost signal
        stack = local.resources
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        console.print(f"imgpipe is up: open {origin}/  (Ctrl-C to stop)", soft_wrap=True)
        console.print(f"  AWS endpoint  {local.aws.endpoint}")
        console.print(f"  raw bucket    {stack.raw_bucket}")
        console.print(f"  output bucket {stack.output_bucket}")
        console.print(f"  table         {stack.table}")
        console.print(f"  queue         {stack.queue_url}")
        console.print(f"  DLQ           {stack.dlq_url}")
        console.print(
            f"  workers       {' '.join(map(str, local.pool.pids if local.pool else []))}"
        )
        try:
            while not stop.wait(0.5):  # a timed wait, so the handler always gets to run
                pass
            error_console.print("stopping: finishing the batches in flight...")
        finally:
            server.shutdown()
            server.server_close()
    return 0


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl-C) or SIGTERM sets. Both are handled explicitly: a process
    manager stops with SIGTERM, and a shell starts background jobs with SIGINT ignored, which
    Python would otherwise keep."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
