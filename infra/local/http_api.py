"""Serve the upload page, the HTTP API and a CloudFront stand-in on one local origin.

- ``/`` and ``/web/*``: the page's static files.
- ``/_stack``: the stack's status.
- ``/cdn/{key}``: the processed bucket, read as CloudFront reads it (through its own access,
  not the API function's role, after the distribution's viewer-request function), so
  rendition URLs, ``.auto`` ones included, work locally as they do behind the CDN.
- Everything else goes to :class:`infra.local.apigw.HttpApiGateway`, which routes, applies
  CORS and invokes the API function as API Gateway does.
"""

import json
import mimetypes
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError, ParamValidationError

from infra.local.apigw import HttpApiGateway, HttpRequest, HttpResponse
from infra.local.cdn_function import FunctionError, ViewerRequestFunction

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
CDN_PREFIX = "/cdn/"
READ_TIMEOUT_S = 30
MAX_LENGTH_DIGITS = 18  # int() of a longer Content-Length could fail (sys.int_max_str_digits)


class ApiRequestHandler(BaseHTTPRequestHandler):
    server_version = "imgpipe-local"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # A client that stops sending (headers or body) does not hold a thread forever.
        self.connection.settimeout(self._server.read_timeout_s)

    def do_GET(self) -> None:
        response = self._local(urlsplit(self.path).path)
        if response is None:
            self._api()
            return
        self.close_connection = self._has_body()  # not read: the connection cannot be reused
        self._send(response)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every other method goes to the gateway, as on AWS
            return self._api
        raise AttributeError(name)

    @property
    def _server(self) -> "LocalHttpServer":
        assert isinstance(self.server, LocalHttpServer)
        return self.server

    def _local(self, path: str) -> HttpResponse | None:
        """The page, the stack's status and the CDN; None for the API's paths."""
        if path == "/":
            return _static("index.html")
        if path == "/_stack":
            status = json.dumps(self._server.status()).encode()
            return HttpResponse(200, [("content-type", "application/json")], status)
        if path.startswith("/web/"):
            return _static(unquote(path.removeprefix("/web/")))
        if path.startswith(CDN_PREFIX) and self._server.cdn is not None:
            return self._server.cdn(path.removeprefix(CDN_PREFIX), list(self.headers.items()))
        return None

    def _has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self.headers.get("content-length", "0") != "0"

    def _api(self) -> None:
        gateway = self._server.gateway
        if gateway is None:
            self.close_connection = self._has_body()
            self._send(_json(503, "Starting"))
            return
        body = self._body(gateway.max_body_bytes)
        if body is None:
            return
        parts = urlsplit(self.path)
        request = HttpRequest(self.command, parts.path, parts.query, list(self.headers.items()),
                              body, self.client_address[0])  # fmt: skip
        self._send(gateway.handle(request))

    def _content_length(self, limit: int) -> int | HttpResponse:
        """The body's declared length, or the answer that refuses it."""
        lengths = self.headers.get_all("content-length") or ["0"]
        text = lengths[0].strip()
        if "transfer-encoding" in self.headers:  # chunked bodies are not supported here
            return _json(411, "Length Required")
        if len(set(lengths)) > 1 or not (text.isascii() and text.isdigit()):
            return _json(400, "Bad Request")
        if len(text) > MAX_LENGTH_DIGITS or int(text) > limit:
            return _json(413, "Request Entity Too Large")
        return int(text)

    def _body(self, limit: int) -> bytes | None:
        """The request body; None when it was refused (answered) or the client went away.
        After a refusal the connection is closed: its unread bytes are not a next request."""
        length = self._content_length(limit)
        if isinstance(length, HttpResponse):
            self._refuse(length)
            return None
        try:
            body = self.rfile.read(length) if length else b""
        except TimeoutError:
            self._refuse(_json(408, "Request Timeout"))
            return None
        if len(body) < length:  # the client closed its side early: nobody to answer
            self.close_connection = True
            return None
        return body

    def _refuse(self, response: HttpResponse) -> None:
        self.close_connection = True
        self._send(response)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line or header, 414, 431) in the
        gateway's JSON shape, not as an HTML page."""
        if self.request_version == "HTTP/0.9":  # no valid request line: http.server's default
            self.request_version = "HTTP/1.1"  # a status line and headers, which clients read
        self._refuse(_json(code, message or HTTPStatus(code).phrase))

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: the page polls often."""


def _static(name: str) -> HttpResponse:
    try:
        target = (WEB_ROOT / name).resolve()
        found = WEB_ROOT.resolve() in target.parents and target.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        return _json(404, "Not Found")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers = [("content-type", kind), ("cache-control", "no-cache")]
    return HttpResponse(200, headers, target.read_bytes())


def _json(status: int, message: str) -> HttpResponse:
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


CdnReader = Callable[[str, list[tuple[str, str]]], HttpResponse]


def cdn_reader(s3: Any, bucket: str, viewer: ViewerRequestFunction | None = None) -> CdnReader:
    """Serve ``bucket``'s objects as CloudFront with OAC does: 403 for a missing key (S3's
    answer to a principal without ListBucket), the object's own headers otherwise.

    ``read(path, headers)`` takes the path after ``/cdn/`` as sent (percent-encoded) and the
    request's headers; ``viewer`` is the distribution's viewer-request function (format
    negotiation for ``.auto``), which sees the URI before it is decoded, as on CloudFront."""

    def read(path: str, headers: list[tuple[str, str]]) -> HttpResponse:
        if viewer is not None:
            try:
                path = viewer.request(f"/{path}", headers)["uri"].removeprefix("/")
            except FunctionError:  # CloudFront answers 503 when a function fails
                return HttpResponse(503, [("content-type", "application/xml")], b"<Error/>")
        key = unquote(path)
        try:
            result = s3.get_object(Bucket=bucket, Key=key)
        except (ClientError, ParamValidationError):  # ParamValidationError: the empty key
            return HttpResponse(403, [("content-type", "application/xml")], b"<Error/>")
        headers = [("content-type", result.get("ContentType", "application/octet-stream")),
                   ("cache-control", result.get("CacheControl", "no-cache"))]  # fmt: skip
        return HttpResponse(200, headers, result["Body"].read())

    return read


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        status: Callable[[], dict[str, Any]],
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        super().__init__(("127.0.0.1", port), ApiRequestHandler)
        self.status = status
        self.read_timeout_s = read_timeout_s
        self.gateway: HttpApiGateway | None = None
        self.cdn: CdnReader | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])
