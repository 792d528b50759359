"""`imgpipe up`'s HTTP server on a real socket: hostile and broken requests get a JSON answer
(or a closed connection), never a traceback, a stuck thread or an HTML page."""

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_helpers import embedded_aws

from core.aws import s3_client
from infra.local.apigw import HttpApiGateway, cors_from_template, routes_from_template
from infra.local.cdn_function import negotiate_function
from infra.local.http_api import LocalHttpServer, cdn_reader
from infra.template.evaluation import Evaluator
from infra.template.loading import load_template

READ_TIMEOUT_S = 1.0
LIMIT = 1000  # the gateway's payload limit in these tests


class Integration:
    """The API function: records the events it gets, answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        body = json.dumps({"route": event["routeKey"]})
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": body}


@pytest.fixture
def integration() -> Integration:
    return Integration()


@pytest.fixture
def server(integration: Integration, capsys: pytest.CaptureFixture[str]) -> Iterator[int]:
    """A served port with the template's routes; no traceback may reach stderr meanwhile."""
    resources = Evaluator(load_template()).resources()
    srv = LocalHttpServer(0, lambda: {"workers": []}, read_timeout_s=READ_TIMEOUT_S)
    srv.gateway = HttpApiGateway(routes_from_template(resources), cors_from_template(resources),
                                 integration, max_body_bytes=LIMIT)  # fmt: skip
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv.port
    srv.shutdown()
    srv.server_close()
    assert "Traceback" not in capsys.readouterr().err


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    body = answer.read()
    kind = answer.getheader("content-type", "")
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, (
        json.loads(body) if kind == "application/json" else body)  # fmt: skip


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], Any, bool]:
    """Send ``request``; the answer, and whether the server closed the connection right after
    it (well before it would close an idle one)."""
    with connect(port) as sock:
        sock.sendall(request)
        status, headers, body = response(sock)
        sock.settimeout(READ_TIMEOUT_S / 3)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return status, headers, body, closed


def post(length: str, body: bytes = b"", extra: str = "") -> bytes:
    head = (f"POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n")  # fmt: skip
    return head.encode() + body


def test_a_well_formed_request_reaches_the_function(server: int, integration: Integration) -> None:
    status, _, body, closed = exchange(server, post("2", b"{}"))
    assert (status, body, closed) == (200, {"route": "POST /uploads"}, False)
    assert integration.events[0]["body"] == "{}"


@pytest.mark.parametrize(
    "length",
    # str.isdigit() holds for the superscripts, which int() refuses; headers are Latin-1.
    ["abc", "-5", "+5", "5 5", "0x10", "1e3", "\N{SUPERSCRIPT TWO}", "1\N{SUPERSCRIPT ONE}"],
)
def test_a_content_length_that_is_not_digits_is_a_400(
    server: int, integration: Integration, length: str
) -> None:
    request = post("0").replace(b"Content-Length: 0", f"Content-Length: {length}".encode("latin-1"))
    status, headers, body, closed = exchange(server, request)
    assert (status, body, closed) == (400, {"message": "Bad Request"}, True)
    assert headers["connection"] == "close"
    assert integration.events == []


def test_differing_content_lengths_are_a_400(server: int, integration: Integration) -> None:
    status, _, _, closed = exchange(server, post("2", b"{}", "Content-Length: 3\r\n"))
    assert (status, closed) == (400, True)
    assert integration.events == []


@pytest.mark.parametrize("length", [str(LIMIT + 1), "9" * 5000])
def test_a_body_over_the_limit_is_a_413_at_once(
    server: int, integration: Integration, length: str
) -> None:
    """Answered from the headers: the body is never waited for (nor sent here)."""
    started = time.monotonic()
    status, _, body, closed = exchange(server, post(length))
    assert (status, body, closed) == (413, {"message": "Request Entity Too Large"}, True)
    assert time.monotonic() - started < READ_TIMEOUT_S
    assert integration.events == []


def test_a_client_that_stops_sending_its_body_gets_a_408(
    server: int, integration: Integration
) -> None:
    started = time.monotonic()
    status, _, body, closed = exchange(server, post("100", b"x" * 10))
    waited = time.monotonic() - started
    assert (status, body, closed) == (408, {"message": "Request Timeout"}, True)
    assert READ_TIMEOUT_S <= waited < READ_TIMEOUT_S * 4
    assert integration.events == []


def test_a_client_that_hangs_up_mid_body_is_not_served(
    server: int, integration: Integration
) -> None:
    with connect(server) as sock:
        sock.sendall(post("100", b"x" * 10))
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # closed, with no answer
    assert integration.events == []  # a truncated body never reaches the function
    assert exchange(server, post("2", b"{}"))[0] == 200


def test_a_client_that_stops_inside_its_headers_is_dropped(server: int) -> None:
    before = threading.active_count()
    with connect(server) as sock:
        sock.sendall(b"POST /uploads HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        sock.settimeout(READ_TIMEOUT_S * 4)
        assert sock.recv(1) == b""
    deadline = time.monotonic() + READ_TIMEOUT_S * 4
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # its thread is gone


def test_chunked_bodies_are_refused_with_411(server: int, integration: Integration) -> None:
    request = b"POST /uploads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    status, _, body, closed = exchange(server, request)
    assert (status, body, closed) == (411, {"message": "Length Required"}, True)
    assert integration.events == []


@pytest.mark.parametrize("method", ["BREW", "PROPFIND", "X-CUSTOM"])
def test_unknown_methods_get_the_gateways_json_404(server: int, method: str) -> None:
    status, headers, body, _ = exchange(
        server, f"{method} /uploads HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert (status, body) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GARBAGE\r\n", 400),
        (b"GET / HTTP/9.9\r\n", 505),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n", 414),
    ],
)
def test_malformed_requests_get_json_not_an_html_page(
    server: int, request_line: bytes, status: int
) -> None:
    got, headers, body, closed = exchange(server, request_line + b"Host: x\r\n\r\n")
    assert (got, closed) == (status, True)
    assert headers["content-type"] == "application/json" and set(body) == {"message"}


@pytest.mark.parametrize("path", ["/web/%00", "/web/" + "a" * 5000, "/web/../../etc/passwd"])
def test_odd_static_paths_are_a_404(server: int, path: str) -> None:
    status, _, body, _ = exchange(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, body) == (404, {"message": "Not Found"})


def test_a_get_with_a_body_on_a_local_path_closes_the_connection(server: int) -> None:
    """The page's paths read no body; keeping the connection would make it the next request."""
    request = b"GET /_stack HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /"
    status, _, body, closed = exchange(server, request)
    assert (status, body, closed) == (200, {"workers": []}, True)


def test_keep_alive_serves_several_requests_on_one_connection(server: int) -> None:
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(post("2", b"{}"))
            assert response(sock)[0] == 200


def test_the_cdn_answers_as_cloudfront_and_negotiates_auto(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CloudFront with OAC gets S3's 403 for a key that is not there; the bucket root (an empty
    key, which botocore refuses to send) is no different. ``.auto`` goes through the template's
    negotiate function (the same file, under Node): the format follows Accept."""
    viewer = negotiate_function()
    assert viewer is not None, "node is needed: `make test` installs it"
    with embedded_aws(strict=False):
        s3 = s3_client()
        s3.create_bucket(Bucket="processed")
        for ext, kind in (("webp", "image/webp"), ("avif", "image/avif"), ("jpg", "image/jpeg")):
            s3.put_object(Bucket="processed", Key=f"thumb/a b.{ext}", Body=ext.encode(),
                          ContentType=kind)  # fmt: skip
        srv = LocalHttpServer(0, dict, read_timeout_s=READ_TIMEOUT_S)
        srv.cdn = cdn_reader(s3, "processed", viewer)
        thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
        requests = {
            "/cdn/thumb/a%20b.webp": "",
            "/cdn/thumb/missing.webp": "",
            "/cdn/": "",
            "/cdn/thumb/a%20b.auto": f"Accept: {chrome}\r\n",
            "/cdn/thumb/a%20b.auto#firefox-65": "Accept: image/webp,*/*\r\n",
            "/cdn/thumb/a%20b.auto#curl": "Accept: */*\r\n",
        }
        try:
            answers = {}
            for path, headers in requests.items():
                line = f"GET {path.split('#')[0]} HTTP/1.1\r\n{headers}\r\n".encode()
                status, _, body, _ = exchange(srv.port, line)
                answers[path] = (status, body)
        finally:
            srv.shutdown()
            srv.server_close()
            viewer.close()
    assert answers == {
        "/cdn/thumb/a%20b.webp": (200, b"webp"),
        "/cdn/thumb/missing.webp": (403, b"<Error/>"),
        "/cdn/": (403, b"<Error/>"),
        "/cdn/thumb/a%20b.auto": (200, b"avif"),
        "/cdn/thumb/a%20b.auto#firefox-65": (200, b"webp"),
        "/cdn/thumb/a%20b.auto#curl": (200, b"jpg"),
    }
    assert "Traceback" not in capsys.readouterr().err
