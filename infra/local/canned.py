"""Canned HTTP responses for botocore's ``before-send`` hook.

Returning one from a ``before-send`` handler replaces the network call, and botocore parses
it exactly as it would a real answer: retries, error codes and all. It is used for fault
injection (``infra.local.chaos``), the backfill benchmark and the tests.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.awsrequest import AWSResponse


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


def canned_response(
    url: str, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> AWSResponse:
    return AWSResponse(url, status, dict(headers or {}), _RawBody(body))  # type: ignore[arg-type]


def s3_error(url: str, code: str, status: int) -> AWSResponse:
    """An S3-style XML error, e.g. ``SlowDown`` / 503."""
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return canned_response(url, status, body)
