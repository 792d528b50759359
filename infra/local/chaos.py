"""Fault injection for the embedded stack (tests and demos of the retry path).

Every S3 GetObject whose URL contains the URL-encoded ``key`` consumes one file from
``folder`` and is answered with ``503 SlowDown``, through botocore's own ``before-send`` hook.
Token files are deleted atomically, so across worker processes exactly as many requests fail
as there are tokens.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.awsrequest import AWSResponse

from infra.local.canned import s3_error


@dataclass(frozen=True)
class Chaos:
    folder: Path  # one file per request to fail
    key: str  # the object key whose GetObject fails

    def install(self, s3_client: Any) -> None:
        """Register the failing hook on ``s3_client`` (a worker's setup hook: it pickles)."""
        tokens, marker = self.folder, quote(self.key, safe="/")

        def fail_while_tokens_last(request: Any, **_: Any) -> AWSResponse | None:
            if marker not in request.url:
                return None
            for token in sorted(tokens.glob("*")):
                try:
                    token.unlink()
                except FileNotFoundError:
                    continue  # another worker took this one
                return s3_error(request.url, "SlowDown", 503)
            return None

        s3_client.meta.events.register_first("before-send.s3.GetObject", fail_while_tokens_last)
