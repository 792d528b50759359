"""Serve the upload page and the HTTP API on one origin, through the API Gateway v2 adapter."""

import json
import mimetypes
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.local.apigw import http_api_event, response_parts
from infra.local.lambda_event import LambdaContext

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


class ApiRequestHandler(BaseHTTPRequestHandler):
    """GET / and /web/* are static files; every other request goes to ``handlers.api``."""

    server_version = "imgpipe-local"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            self._static("index.html")
        elif path == "/_stack":
            assert isinstance(self.server, LocalHttpServer)
            status = json.dumps(self.server.status()).encode()
            self._send(200, {"content-type": "application/json"}, status)
        elif path.startswith("/web/"):
            self._static(unquote(path.removeprefix("/web/")))
        else:
            self._api()

    def do_POST(self) -> None:
        self._api()

    def do_OPTIONS(self) -> None:
        self._api()

    def _static(self, name: str) -> None:
        target = (WEB_ROOT / name).resolve()
        if WEB_ROOT.resolve() not in target.parents or not target.is_file():
            self._send(404, {"content-type": "application/json"}, b'{"message":"not found"}')
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, {"content-type": kind, "cache-control": "no-cache"}, target.read_bytes())

    def _api(self) -> None:
        from handlers.api import handler  # imported late: it reads IMGPIPE_CORS_ORIGINS

        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        event = http_api_event(self.command, parts.path, body, dict(self.headers), parts.query)
        try:
            status, headers, data = response_parts(handler(event, LambdaContext(29)))
        except Exception as exc:  # noqa: BLE001 - API Gateway turns a crash into a 500 too
            self.log_error("API handler raised %r", exc)
            status, headers = 500, {"content-type": "application/json"}
            data = json.dumps({"message": "Internal Server Error"}).encode()
        self._send(status, headers, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: the page polls often."""


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, status: Callable[[], dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", port), ApiRequestHandler)
        self.status = status
