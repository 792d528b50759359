"""The options of `imgpipe loadtest`: the target, the workload, the harness and the cost
model, each number refused at parse time when the run could not honour it."""

import argparse
from pathlib import Path
from typing import Any

from infra.commands.arguments import bounded, positive
from infra.commands.worker import MAX_BATCH_WINDOW_S

DEFAULT_SIZES = "2MP:40,12MP:50,24MP:10"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _target_arguments(parser.add_argument_group("target"))
    _workload_arguments(parser.add_argument_group("workload"))
    _harness_arguments(parser.add_argument_group("harness"))
    _cost_arguments(parser.add_argument_group("cost model"))


def _target_arguments(target: Any) -> None:
    target.add_argument("--stack", metavar="NAME", help="a deployed stack (CloudFormation name)")
    target.add_argument("--region", help="the deployed stack's region")
    target.add_argument(
        "--workers",
        type=bounded(int, 1),
        help="embedded stack: worker processes (default: cores + 1, because each worker waits "
        "on S3 and DynamoDB for part of every image and one more process fills that time)",
    )
    target.add_argument(
        "--threads",
        type=bounded(int, 1),
        default=1,
        help="embedded stack: threads per worker process",
    )
    target.add_argument(
        "--batch-window",
        type=bounded(float, 0, MAX_BATCH_WINDOW_S),
        default=None,
        metavar="S",
        help="embedded stack: batching window (default: the template's)",
    )


def _workload_arguments(work: Any) -> None:
    source = work.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, metavar="DIR", help="send the images in DIR")
    source.add_argument(
        "--synthetic",
        type=bounded(int, 1),
        metavar="N",
        help="send N synthetic photo-like images (default)",
    )
    work.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"synthetic size mix, megapixels:weight (default {DEFAULT_SIZES}; 0.3MP is fine)",
    )
    work.add_argument(
        "--formats", default="jpeg:100", help="synthetic format mix (jpeg, heic, png, webp)"
    )
    work.add_argument(
        "--pool",
        type=bounded(int, 1),
        default=4,
        help="distinct synthetic images per size and format",
    )
    work.add_argument("--cache-dir", type=Path, help="where generated images are cached")
    work.add_argument("--seed", type=int, default=0, help="workload random seed")
    work.add_argument(
        "--mode",
        choices=("upload", "enqueue"),
        default="upload",
        help="upload: PutObject (S3 notification path); enqueue: backfill messages",
    )
    work.add_argument(
        "--source-bucket",
        help="enqueue mode: bucket for the objects (embedded default: a new bucket without "
        "notifications; deployed default: the raw bucket, prefix loadtest/)",
    )
    count = work.add_mutually_exclusive_group()
    count.add_argument(
        "--count",
        type=bounded(int, 1),
        help="images to measure (default: --synthetic N or the corpus)",
    )
    count.add_argument("--duration", type=positive(float), metavar="S", help="send for S seconds")
    pace = work.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=positive(float), metavar="R", help="open loop: R images/s")
    pace.add_argument(
        "--concurrency",
        type=bounded(int, 1),
        metavar="C",
        help="closed loop: keep C images in flight (default: workers x threads + 1)",
    )
    work.add_argument(
        "--warmup", type=bounded(int, 0), default=0, help="extra images first, not measured"
    )
    work.add_argument("--no-calibrate", action="store_true", help="skip the engine-alone timing")


def _harness_arguments(tuning: Any) -> None:
    tuning.add_argument("--out", type=Path, help="run folder (default runs/<timestamp>)")
    tuning.add_argument(
        "--poll-interval", type=positive(float), default=0.25, help="table poll period (s)"
    )
    tuning.add_argument(
        "--drain-timeout",
        type=bounded(float, 0),
        default=300,
        help="seconds to wait for the stragglers",
    )
    tuning.add_argument("--uploaders", type=bounded(int, 1), default=4, help="upload threads")
    tuning.add_argument(
        "--sample-interval",
        type=bounded(float, 0.1),
        default=1.0,
        metavar="S",
        help="seconds between samples of queue depth, CPU and memory",
    )
    tuning.add_argument(
        "--no-iam-enforcement",
        action="store_true",
        help="embedded stack only: run moto without IAM and signature checks, to measure what "
        "enforcement costs (the default, and every test, enforces them)",
    )
    tuning.add_argument("--json", action="store_true", help="print the summary as JSON")


def _cost_arguments(cost: Any) -> None:
    cost.add_argument(
        "--memory-mb", type=bounded(int, 128, 10240), default=2048, help="Lambda memory (MB)"
    )
    cost.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64")
    cost.add_argument(
        "--batch-size", type=positive(float), help="records per invocation (default: the stack's)"
    )
    cost.add_argument(
        "--compute-scale",
        type=positive(float),
        default=1.0,
        help="Lambda ms per locally measured ms (1.0: a local core ~ 1.15 vCPU at 2048 MB)",
    )
    cost.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="NAME=USD",
        help="override a price, e.g. lambda_gb_s_arm64=0.0000133334 (see the report)",
    )
