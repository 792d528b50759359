"""Run JavaScript under Node for the tests (the placeholder reference, the CDN function).

``make test`` installs Debian's ``nodejs`` when ``node`` is missing (the ``node`` target), as
it does Chromium for the browser test; without it these tests fail and say so.
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    assert found, "node is needed for this test: `make test` installs it (apt-get install nodejs)"
    return found


def run_module(source: str, payload: Any, timeout_s: float = 60) -> Any:
    """Run ``source`` as an ES module with ``payload`` as JSON on stdin; its stdout, as JSON.
    Paths under the repository are imported as ``file://`` URLs built from ``REPO``."""
    result = subprocess.run(
        [node(), "--input-type=module", "-e", source],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def module_url(relative: str) -> str:
    return (REPO / relative).as_uri()
