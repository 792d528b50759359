"""`imgpipe up`: the embedded stack, workers, HTTP API and upload page, until Ctrl-C
(or SIGTERM). IAM from the template is enforced, every request is SigV4-verified, browser
uploads are checked against their POST policy, and the API is routed as API Gateway does."""

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from core.settings import fault_injection
from infra.commands.arguments import bounded
from infra.commands.signals import stop_signals
from infra.console import console, error, error_console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up", help="run the embedded stack with the API and upload page", description=__doc__
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="HTTP port of the page and API; 0 picks a free "
        "one (default: %(default)s)"
    )  # fmt: skip
    parser.add_argument("--aws-port", type=_port, default=0,
                        help="moto port (default: a free port)")  # fmt: skip
    parser.add_argument("--workers", type=bounded(int, 1, 1024), default=os.cpu_count() or 1,
                        help="worker processes (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--function-timeout",
        type=bounded(float, 1, 900),
        default=None,
        help="seconds (default: the template's)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=bounded(int, 0, 43_200),
        default=None,
        help="seconds before a failed message returns (default: the template's); tests shorten it",
    )
    parser.add_argument(
        "--source-bucket", action="append", default=[], metavar="NAME",
        help="a bucket backfill may read (the template's BackfillSourceBuckets; created when "
        "missing); repeat for more",
    )  # fmt: skip
    parser.add_argument("--on-demand", action="store_true",
                        help="OnDemandProcessing=true: the POST /process route and its grants")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line once ready (logs go to stderr)")  # fmt: skip
    parser.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def run(args: argparse.Namespace) -> int:
    # Deferred, as in every command module (all are imported to build the parser): the
    # stack imports moto and boto3, about 2 s that `imgpipe render` must not pay.
    from infra.commands.environment import applied_env
    from infra.local.chaos import Chaos
    from infra.local.http_api import LocalHttpServer
    from infra.local.stack import LocalStack, StackOptions

    try:
        server = LocalHttpServer(args.port, dict)
    except OSError as exc:
        error(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}")
        return 2
    origins = (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}")
    parameters = {
        "AllowedOrigins": ",".join(origins),
        "OnDemandProcessing": "true" if args.on_demand else "false",
        "BackfillSourceBuckets": ",".join(args.source_bucket),
    }
    faults = fault_injection()  # the tests of the retry path: (token folder, object key)
    chaos = Chaos(Path(faults[0]), faults[1]) if faults else None
    options = StackOptions(workers=args.workers, port=args.aws_port, parameters=parameters,
                           function_timeout_s=args.function_timeout,
                           visibility_timeout_s=args.visibility_timeout, chaos=chaos)  # fmt: skip
    local = LocalStack(options)
    server.status = local.status
    out = error_console if args.json else console
    # The signals are handled before "up" is announced: no signal is lost.
    with local, applied_env(local.client_env()), stop_signals() as stop:
        api = serve_api(local, server, origins[0], args.source_bucket)
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        announce(local, origins[0], args.json)
        try:
            while not stop.wait(0.5):  # a timed wait, so the handler always gets to run
                pass
            out.print("stopping: finishing the batches in flight...")
        finally:
            server.shutdown()
            server.server_close()
            api.close()
    return 0


def serve_api(local: Any, server: Any, origin: str, source_buckets: list[str]) -> Any:
    """Start the API's functions (each in its own processes, with its own role) behind the
    local gateway, which routes each route to the function its integration names."""
    # Deferred (see run): these import boto3 and Powertools, over 1 s.
    from core.aws import s3_client
    from infra.local.api_functions import ApiFunctions
    from infra.local.apigw import HttpApiGateway, cors_from_template, routes_from_template
    from infra.local.cdn_function import negotiate_function
    from infra.local.http_api import cdn_reader
    from infra.local.jwt_authorizer import route_authorizers
    from infra.local.provision import create_bucket

    stack = local.resources
    s3 = s3_client()
    for bucket in source_buckets:
        create_bucket(s3, bucket, stack.region)
    resources = stack.resources
    # The CDN's and Cognito's local stand-ins replace their AWS domains.
    extra = {"IMGPIPE_CDN_DOMAIN": f"{origin}/cdn", "IMGPIPE_AUTH_ENDPOINT": local.aws.endpoint}
    api = ApiFunctions(resources, local.function_env, extra, local.options.prefix)
    api.warm()
    server.gateway = HttpApiGateway(
        routes_from_template(resources),
        cors_from_template(resources),
        api.integrations,
        authorizers=route_authorizers(resources, origin=local.aws.endpoint),
    )
    # CloudFront's own access (OAC), after the distribution's viewer-request function.
    server.cdn = cdn_reader(s3, stack.output_bucket, negotiate_function())
    return api


def announce(local: Any, origin: str, as_json: bool) -> None:
    stack = local.resources
    operator = local.aws.operator
    if as_json:
        line = {
            "api_url": origin,
            "endpoint_url": local.aws.endpoint,
            "region": stack.region,
            "admin": {"access_key_id": operator.access_key_id,
                      "secret_access_key": operator.secret_access_key},
            "raw_bucket": stack.raw_bucket,
            "processed_bucket": stack.output_bucket,
            "table": stack.table,
            "queue_url": stack.queue_url,
            "dlq_url": stack.dlq_url,
            "users": {name: user.as_json() for name, user in local.users.items()},
        }  # fmt: skip
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return
    console.print(f"imgpipe is up: open {origin}/  (Ctrl-C to stop)", soft_wrap=True)
    for label, value in (
        ("AWS endpoint", local.aws.endpoint),
        ("operator key", operator.access_key_id),
        ("operator secret", operator.secret_access_key),
        ("raw bucket", stack.raw_bucket),
        ("output bucket", stack.output_bucket),
        ("table", stack.table),
        ("queue", stack.queue_url),
        ("DLQ", stack.dlq_url),
        ("workers", " ".join(map(str, local.pool.pids if local.pool else []))),
    ):
        console.print(f"  {label:<16}{value}", soft_wrap=True)
    for name, user in local.users.items():
        role = "admin" if user.admin else "user"
        console.print(f"  sign in as {name:<6}password {user.password}  ({role})", soft_wrap=True)
