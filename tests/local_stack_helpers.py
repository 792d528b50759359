"""Run `imgpipe up` in a subprocess and talk to its moto endpoint, as a separate client."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.moto_server import DUMMY_CREDENTIALS, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    url: str
    aws_endpoint: str
    output: list[str]

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_stack", timeout=5) as response:
            return dict(json.load(response))

    def client_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.aws_endpoint, "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1", **DUMMY_CREDENTIALS}  # fmt: skip


@contextmanager
def imgpipe_up(
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    stop_with: signal.Signals = signal.SIGINT,
    sigint_ignored: bool = False,
) -> Iterator[RunningStack]:
    """Start `imgpipe up` on free ports; stop it with SIGINT (as Ctrl-C would) afterwards.
    ``sigint_ignored`` starts it as a shell starts a background job: with SIGINT ignored."""
    port, aws_port = free_port(), free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMGPIPE_"))}
    child_env.update(env or {})
    launcher = ["bash", "-c", 'trap "" INT; exec "$@"', "launcher"] if sigint_ignored else []
    process = subprocess.Popen(
        [
            *launcher,
            sys.executable,
            "-m",
            "infra.cli",
            "up",
            "--port",
            str(port),
            "--aws-port",
            str(aws_port),
            *args,
        ],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "imgpipe is up" in line:
            break
    if not any("imgpipe is up" in line for line in output):
        process.kill()
        raise AssertionError("imgpipe up did not start:\n" + "".join(output))
    stack = RunningStack(
        process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{aws_port}", output
    )
    try:
        yield stack
    finally:
        process.send_signal(stop_with)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
        output.append(rest)
        assert process.returncode == 0, "".join(output)
        assert "stopping: finishing the batches in flight" in rest, "".join(output)
