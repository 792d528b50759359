"""Where the keys come from: the ``Source`` protocol, a bucket listing and a key file."""

import os
import sys
from collections.abc import Iterator
from typing import IO, Any, Final, Protocol

from infra.backfill.clients import error_code
from infra.backfill.options import LIST_PAGE_SIZE, BackfillError
from infra.backfill.work import Item, Position

CHUNK_LINES: Final = 1000  # lines of a key file or inventory CSV per resumable chunk


class Source(Protocol):
    """A stream of resumable chunks: ``(position after the chunk, items)``."""

    kind: str

    def signature(self) -> dict[str, Any]:
        """What identifies this source in a state file (a resume must match it)."""

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]: ...

    def progress(self) -> tuple[int, int | None]:
        """(bytes read, total bytes) for an ETA; total is None when unknown."""

    def provides(self) -> frozenset[str]:
        """Which of ``size``, ``etag`` and ``time`` the items carry (others need HeadObject)."""


class ListingSource:
    """ListObjectsV2 through the boto3 paginator; one chunk per page.

    A page's ``NextContinuationToken`` is recorded only once every key of that page and of
    all earlier pages is accounted for; ``start_after`` (the page's last key) is kept too and
    used when the token is gone (the final page) or no longer accepted.
    """

    kind = "list"

    def __init__(self, s3: Any, bucket: str, prefix: str, page_size: int = LIST_PAGE_SIZE):
        self.s3, self.bucket, self.prefix, self.page_size = s3, bucket, prefix, page_size

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "bucket": self.bucket, "prefix": self.prefix}

    def provides(self) -> frozenset[str]:
        return frozenset({"size", "etag", "time"})

    def progress(self) -> tuple[int, int | None]:
        return 0, None

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        position = position or {}
        token, start_after = position.get("continuation_token"), position.get("start_after")
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix,
            "PaginationConfig": {"PageSize": self.page_size},
        }
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        last_key = start_after
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(**kwargs):
                items = [
                    Item(
                        o["Key"],
                        int(o["Size"]),
                        str(o.get("ETag", "")).strip('"'),
                        o["LastModified"],
                    )
                    for o in page.get("Contents", ())
                ]
                if items:
                    last_key = items[-1].key
                yield (
                    {
                        "continuation_token": page.get("NextContinuationToken"),
                        "start_after": last_key,
                    },
                    items,
                )
        except Exception as exc:
            if token and start_after and error_code(exc) == "InvalidArgument":
                # The saved token was refused (e.g. too old): resume from the last key instead.
                yield from self.chunks({"start_after": start_after})
                return
            raise


class FileSource:
    """One key per line (UTF-8, not URL-encoded) from a file or ``-`` (stdin).

    Position: the number of lines consumed; a resume skips that many lines (so stdin resumes
    too, when the same list is piped in again). Blank lines are ignored.
    """

    kind = "file"

    def __init__(self, path: str, stdin: IO[bytes] | None = None) -> None:
        self.path = path
        self._stdin = stdin
        self._read = 0
        self._total: int | None = None
        if path != "-":
            try:
                self._total = os.stat(path).st_size
            except OSError as exc:
                raise BackfillError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path}

    def provides(self) -> frozenset[str]:
        return frozenset()

    def progress(self) -> tuple[int, int | None]:
        return self._read, self._total

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        skip = int((position or {}).get("line", 0))
        if self.path == "-":
            stream: IO[bytes] = self._stdin or sys.stdin.buffer
            yield from self._lines(stream, skip)
        else:
            with open(self.path, "rb") as stream:
                yield from self._lines(stream, skip)

    def _lines(self, stream: IO[bytes], skip: int) -> Iterator[tuple[Position, list[Item]]]:
        line_no = 0
        items: list[Item] = []
        read = 0
        for raw in stream:
            line_no += 1
            read += len(raw)
            if line_no <= skip:
                continue
            key = raw.decode("utf-8").rstrip("\r\n")
            if key:
                items.append(Item(key))
            if line_no % CHUNK_LINES == 0:
                self._read = read
                yield {"line": line_no}, items
                items = []
        self._read = read
        if items or line_no > skip:
            yield {"line": line_no}, items
