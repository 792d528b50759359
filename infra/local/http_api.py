"""Serve the upload page, the HTTP API and a CloudFront stand-in on one local origin.

- ``/`` and ``/web/*``: the page's static files.
- ``/_stack``: the stack's status.
- ``/cdn/{key}``: the processed bucket, read as CloudFront reads it (through its own access,
  not the API function's role), so rendition URLs work locally as they do behind the CDN.
- Everything else goes to :class:`infra.local.apigw.HttpApiGateway`, which routes, applies
  CORS and invokes the API function as API Gateway does.
"""

import json
import mimetypes
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from infra.local.apigw import HttpApiGateway, HttpRequest, HttpResponse

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
CDN_PREFIX = "/cdn/"
READ_TIMEOUT_S = 30


class ApiRequestHandler(BaseHTTPRequestHandler):
    server_version = "imgpipe-local"
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S  # a client that stops sending does not hold a thread forever

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            self._static("index.html")
        elif path == "/_stack":
            status = json.dumps(self._server.status()).encode()
            self._send(HttpResponse(200, [("content-type", "application/json")], status))
        elif path.startswith("/web/"):
            self._static(unquote(path.removeprefix("/web/")))
        elif path.startswith(CDN_PREFIX) and self._server.cdn is not None:
            self._send(self._server.cdn(unquote(path.removeprefix(CDN_PREFIX))))
        else:
            self._api()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every other method goes to the gateway, as on AWS
            return self._api
        raise AttributeError(name)

    @property
    def _server(self) -> "LocalHttpServer":
        assert isinstance(self.server, LocalHttpServer)
        return self.server

    def _static(self, name: str) -> None:
        target = (WEB_ROOT / name).resolve()
        if WEB_ROOT.resolve() not in target.parents or not target.is_file():
            self._send(_json(404, "Not Found"))
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        headers = [("content-type", kind), ("cache-control", "no-cache")]
        self._send(HttpResponse(200, headers, target.read_bytes()))

    def _api(self) -> None:
        gateway = self._server.gateway
        length_text = self.headers.get("content-length") or "0"
        if not length_text.isdigit():
            self.close_connection = True
            self._send(_json(400, "Bad Request"))
            return
        length = int(length_text)
        if gateway is None or length > gateway.max_body_bytes:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._send(
                _json(413, "Request Entity Too Large") if gateway else _json(503, "Starting")
            )
            return
        parts = urlsplit(self.path)
        body = self.rfile.read(length) if length else b""
        request = HttpRequest(self.command, parts.path, parts.query, list(self.headers.items()),
                              body, self.client_address[0])  # fmt: skip
        self._send(gateway.handle(request))

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: the page polls often."""


def _json(status: int, message: str) -> HttpResponse:
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def cdn_reader(s3: Any, bucket: str) -> Callable[[str], HttpResponse]:
    """Serve ``bucket``'s objects as CloudFront with OAC does: 403 for a missing key (S3's
    answer to a principal without ListBucket), the object's own headers otherwise."""

    def read(key: str) -> HttpResponse:
        try:
            result = s3.get_object(Bucket=bucket, Key=key)
        except ClientError:
            return HttpResponse(403, [("content-type", "application/xml")], b"<Error/>")
        headers = [("content-type", result.get("ContentType", "application/octet-stream")),
                   ("cache-control", result.get("CacheControl", "no-cache"))]  # fmt: skip
        return HttpResponse(200, headers, result["Body"].read())

    return read


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, status: Callable[[], dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", port), ApiRequestHandler)
        self.status = status
        self.gateway: HttpApiGateway | None = None
        self.cdn: Callable[[str], HttpResponse] | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])
