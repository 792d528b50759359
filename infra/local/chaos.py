"""Fault injection for the embedded stack (tests and demos of the retry path).

When ``IMGPIPE_CHAOS_DIR`` names a folder, every S3 GetObject whose URL contains the
URL-encoded ``IMGPIPE_CHAOS_KEY`` consumes one file from that folder and is answered with
``503 SlowDown``, through botocore's own ``before-send`` hook. Token files are deleted
atomically, so across worker processes exactly as many requests fail as there are tokens.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.awsrequest import AWSResponse

from infra.local.canned import s3_error


def install_from_env(s3_client: Any) -> bool:
    folder, key = os.environ.get("IMGPIPE_CHAOS_DIR"), os.environ.get("IMGPIPE_CHAOS_KEY")
    if not folder or not key:
        return False
    tokens, marker = Path(folder), quote(key, safe="/")

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
    return True
