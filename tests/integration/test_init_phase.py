"""Lambda's init phase: importing ``handlers.process`` builds the clients and the thread pool
(in a fresh interpreter, as a cold container), without a single network call; without its
settings the import still succeeds and the first invoke names what is missing."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PROBE = """
import json, handlers.process as p
from infra.worker.lambda_event import LambdaContext
report = {"runtime": p.runtime.cache_info().currsize, "pools": p.batch_processor.cache_info().currsize}
try:
    p.handler({"Records": []}, LambdaContext(60))
except Exception as exc:
    report["invoke"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
"""


def cold_import(env: dict[str, str]) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMGPIPE_", "AWS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_builds_the_clients_and_the_pool_without_calling_aws() -> None:
    with socket.socket() as listener:  # the only endpoint: any call would connect here
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        report = cold_import(
            {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "IMGPIPE_RAW_BUCKET": "raw",
                "IMGPIPE_OUTPUT_BUCKET": "out",
                "IMGPIPE_TABLE": "images",
            }
        )
        listener.settimeout(0.2)
        try:
            listener.accept()
            connected = True
        except TimeoutError:
            connected = False
    assert (report["runtime"], report["pools"]) == (1, 1)
    assert not connected, "the init phase made a network call"


def test_without_settings_the_import_succeeds_and_the_invoke_names_them() -> None:
    report = cold_import({"AWS_DEFAULT_REGION": "us-east-1"})
    assert (report["runtime"], report["pools"]) == (0, 0)
    assert str(report["invoke"]).startswith("SettingsError: missing setting(s): IMGPIPE_RAW_BUCKET")
