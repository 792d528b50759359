"""Run `imgpipe up --json --port 0` in a subprocess and drive it through the line it prints,
as a script would: the operator's keys, the endpoint and the resource names."""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    info: dict[str, Any]
    log: list[str] = field(default_factory=list)  # stderr, collected by a thread

    @property
    def url(self) -> str:
        return str(self.info["api_url"])

    @property
    def raw_bucket(self) -> str:
        return str(self.info["raw_bucket"])

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_stack", timeout=5) as response:
            return dict(json.load(response))

    def client_env(self) -> dict[str, str]:
        """What a separate client needs: the endpoint, the region and the operator's keys."""
        admin = self.info["admin"]
        return {"AWS_ENDPOINT_URL": self.info["endpoint_url"], "AWS_REGION": self.info["region"],
                "AWS_DEFAULT_REGION": self.info["region"],
                "AWS_ACCESS_KEY_ID": admin["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": admin["secret_access_key"]}  # fmt: skip


def _read_lines(stream: Any, into: list[str]) -> None:
    into.extend(iter(stream.readline, ""))


@contextmanager
def imgpipe_up(
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    stop_with: signal.Signals = signal.SIGINT,
    sigint_ignored: bool = False,
) -> Iterator[RunningStack]:
    """Start `imgpipe up --json` on free ports; stop it with SIGINT (as Ctrl-C would)
    afterwards. ``sigint_ignored`` starts it as a shell starts a background job."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMGPIPE_"))}
    child_env.update(env or {})
    launcher = ["bash", "-c", 'trap "" INT; exec "$@"', "launcher"] if sigint_ignored else []
    command = [*launcher, sys.executable, "-m", "infra.cli", "up", "--json", "--port", "0", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    log: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(process.stderr, log), daemon=True)
    reader.start()
    ready: list[str] = []
    waiter = threading.Thread(target=lambda: ready.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    waiter.start()
    waiter.join(READY_TIMEOUT_S)
    if not ready or not ready[0].strip():
        process.kill()
        raise AssertionError("imgpipe up did not start:\n" + "".join(log))
    stack = RunningStack(process, json.loads(ready[0]), log)
    try:
        yield stack
    finally:
        process.send_signal(stop_with)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        rest = process.stdout.read()  # stderr belongs to the reader thread alone
        reader.join(5)
        output = "".join(log)
        assert rest == "", f"stdout holds only the ready line, not {rest!r}"
        assert process.returncode == 0, output
        assert "stopping: finishing the batches in flight" in output, output
