"""Two worst-case records in one batch, in a function process capped at the function's memory.

On Lambda an out-of-memory kill ends the whole invocation, so every record of the batch is
retried and, after five receives, good images land in the DLQ. The worker default must keep a
batch inside ``MemorySize``: here 1,024 MB, with two 50 MP 16-bit grey PNGs (the worst accepted
input at the default limits, about 526 MB each at its peak), on this 2-CPU machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
from aws_helpers import embedded_aws, receive_event, role_env

from infra.local.moto_server import EmbeddedAws
from infra.local.provision import PROCESS_FUNCTION, Stack, provision
from loadtest.worst_inputs import grey16_png

MEMORY_MB = 1024


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[EmbeddedAws, Stack]]:
    with embedded_aws() as aws:
        yield aws, provision("memory")


def cap_memory() -> None:
    """What the function's memory does to a process: allocations beyond it fail."""
    limit = MEMORY_MB * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


RUN_HANDLER = """
import json, sys
from handlers.process import handler
from infra.worker.lambda_event import LambdaContext
print(json.dumps(handler(json.load(sys.stdin), LambdaContext(120))))
"""


def test_two_worst_case_records_fit_the_function_memory(
    stack: tuple[EmbeddedAws, Stack],
) -> None:
    aws, provisioned = stack
    s3 = boto3.client("s3")
    data = grey16_png()
    keys = ["uploads/worst-1.png", "uploads/worst-2.png"]
    for key in keys:
        s3.put_object(Bucket=provisioned.raw_bucket, Key=key, Body=data)
    event = receive_event(provisioned, 10)
    event["Records"] = [r for r in event["Records"] if "s3:TestEvent" not in r["body"]]
    assert len(event["Records"]) == 2

    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
    env.update({k: v for k, v in aws.client_env.items() if v is not None})
    env.update(provisioned.env())
    env.update(role_env(provisioned.roles[PROCESS_FUNCTION]))
    env.update({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
                "POWERTOOLS_METRICS_DISABLED": "true"})  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", RUN_HANDLER],
        input=json.dumps(event),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_memory,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
    table = boto3.resource("dynamodb").Table(provisioned.table)
    for key in keys:
        item = table.get_item(Key={"image_id": f"{provisioned.raw_bucket}/{key}"})["Item"]
        assert item["status"] == "PROCESSED", item
