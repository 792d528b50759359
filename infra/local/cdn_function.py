"""The CDN's viewer-request function (``infra/cdn/negotiate.js``), run locally as CloudFront
runs it: the very file, in a fresh JavaScript context, under one long-lived Node process.

Requests go to Node one JSON line at a time, under a lock (the HTTP server is threaded). The
process ends by itself when its stdin closes, that is when this process exits, or at
``close()``. Without ``node`` (``make test`` installs Debian's ``nodejs``), there is no
function: ``negotiate_function()`` says so once, and ``.auto`` URLs are not served locally.
"""

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

NEGOTIATE_JS: Final = Path(__file__).resolve().parent.parent / "cdn" / "negotiate.js"
_RUNNER: Final = r"""
const { readFileSync } = require("node:fs");
const vm = require("node:vm");
const readline = require("node:readline");
const handler = vm.runInNewContext(readFileSync(process.argv[1], "utf8") + "\nhandler", {});
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let answer;
  try {
    answer = { request: handler(JSON.parse(line)) };
  } catch (error) {
    answer = { error: String(error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
"""


class FunctionError(RuntimeError):
    """The function threw, or Node went away."""


class ViewerRequestFunction:
    def __init__(self, node: str, code: Path = NEGOTIATE_JS) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [node, "-e", _RUNNER, str(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def request(self, uri: str, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """The request as the function returns it, for a viewer GET of ``uri``."""
        event = {"version": "1.0", "context": {"eventType": "viewer-request"},
                 "request": {"method": "GET", "uri": uri, "querystring": {},
                             "headers": cloudfront_headers(headers), "cookies": {}}}  # fmt: skip
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            try:
                self._process.stdin.write(json.dumps(event) + "\n")
                line = self._process.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                raise FunctionError(f"the viewer-request function's Node process: {exc}") from exc
        if not line:
            raise FunctionError("the viewer-request function's Node process exited")
        answer = json.loads(line)
        if "error" in answer:
            raise FunctionError(f"the viewer-request function threw: {answer['error']}")
        return dict(answer["request"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def cloudfront_headers(headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """HTTP headers in the CloudFront Functions event shape: lower-case names, ``value``, and
    ``multiValue`` when a header is repeated."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    shaped: dict[str, Any] = {}
    for name, values in grouped.items():
        shaped[name] = {"value": values[0]}
        if len(values) > 1:
            shaped[name]["multiValue"] = [{"value": v} for v in values]
    return shaped


def negotiate_function() -> ViewerRequestFunction | None:
    """The negotiate function under Node, or None (with a warning) when there is no Node."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        print("warning: node not found: the local CDN will not negotiate .auto URLs "
              "(apt-get install nodejs)", file=sys.stderr)  # fmt: skip
        return None
    return ViewerRequestFunction(node)
