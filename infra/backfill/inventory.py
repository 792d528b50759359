"""S3 Inventory as a source: the ``manifest.json`` and its CSV(.gz) files."""

import csv
import gzip
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote_plus

from infra.backfill.options import BackfillError, parse_s3_url
from infra.backfill.sources import CHUNK_LINES
from infra.backfill.work import Item, Position


@dataclass(frozen=True)
class InventoryFile:
    key: str
    size: int | None


@dataclass(frozen=True)
class Manifest:
    location: str
    source_bucket: str
    destination_bucket: str
    columns: tuple[str, ...]
    files: tuple[InventoryFile, ...]


def _inventory_location(location: str) -> tuple[str | None, str]:
    if location.startswith("s3://"):
        return parse_s3_url(location)
    return None, location


def load_manifest(location: str, s3: Any | None) -> Manifest:
    """Read an S3 Inventory ``manifest.json`` from ``s3://...`` or a local path."""
    bucket, path = _inventory_location(location)
    try:
        if bucket is not None:
            if s3 is None:
                raise BackfillError("an S3 client is needed for an s3:// manifest")
            body = s3.get_object(Bucket=bucket, Key=path)["Body"].read()
        else:
            body = Path(path).read_bytes()
        data = json.loads(body)
    except BackfillError:
        raise
    except (OSError, ValueError) as exc:
        raise BackfillError(f"cannot read inventory manifest {location}: {exc}") from exc
    except Exception as exc:  # botocore errors
        raise BackfillError(f"cannot read inventory manifest {location}: {exc}") from exc
    if not isinstance(data, dict):
        raise BackfillError(f"{location} is not an inventory manifest")
    file_format = str(data.get("fileFormat", "CSV")).upper()
    if file_format != "CSV":
        raise BackfillError(f"inventory format {file_format} is not supported (use CSV)")
    schema = data.get("fileSchema")
    if not isinstance(schema, str) or not schema.strip():
        raise BackfillError(f"{location} has no fileSchema")
    columns = tuple(c.strip() for c in schema.split(","))
    if "Key" not in columns:
        raise BackfillError(f"{location}: fileSchema has no Key column")
    files = tuple(
        InventoryFile(str(f["key"]), int(f["size"]) if f.get("size") is not None else None)
        for f in data.get("files", [])
    )
    destination = str(data.get("destinationBucket", ""))
    return Manifest(
        location=location,
        source_bucket=str(data.get("sourceBucket", "")),
        destination_bucket=destination.rsplit(":", 1)[-1] if destination else "",
        columns=columns,
        files=files,
    )


def _parse_inventory_time(text: str) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _CountingReader(io.RawIOBase):
    """Counts the bytes read through it (for progress and ETA)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class InventorySource:
    """The CSV(.gz) files of an S3 Inventory manifest, in manifest order.

    Columns come from the manifest's ``fileSchema``; keys are URL-encoded in inventory CSVs.
    Rows of other buckets, delete markers and non-current versions are not listed.
    Files in S3 are downloaded to a temporary file before reading (a stream held open for
    hours at a low ``--max-rate`` would time out). Local files are looked up as the file key,
    or its trailing part (``data/x.csv.gz``, ``x.csv.gz``), under the manifest's folder or one of
    its three parents, which covers ``aws s3 sync`` of the inventory prefix.
    Position: ``{"file": index, "key": file key, "line": rows consumed}``.
    """

    kind = "inventory"

    def __init__(self, manifest: Manifest, s3: Any | None, bucket: str | None = None) -> None:
        self.manifest, self.s3 = manifest, s3
        self.bucket = bucket or manifest.source_bucket
        if not self.bucket:
            raise BackfillError("the manifest names no sourceBucket; pass s3://BUCKET")
        self._done_bytes = 0
        self._reader: _CountingReader | None = None
        sizes = [f.size for f in manifest.files]
        self._total = sum(s for s in sizes if s is not None) if None not in sizes else None
        cols = manifest.columns
        self._col = {name: cols.index(name) for name in cols}

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "manifest": self.manifest.location}

    def provides(self) -> frozenset[str]:
        columns = {"Size": "size", "ETag": "etag", "LastModifiedDate": "time"}
        return frozenset(name for column, name in columns.items() if column in self._col)

    def progress(self) -> tuple[int, int | None]:
        return self._done_bytes + (self._reader.count if self._reader else 0), self._total

    def _open(self, entry: InventoryFile) -> IO[bytes]:
        bucket, path = _inventory_location(self.manifest.location)
        if bucket is not None:
            assert self.s3 is not None
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned; the caller closes it
            source_bucket = self.manifest.destination_bucket or bucket
            self.s3.download_fileobj(source_bucket, entry.key, spool)
            spool.seek(0)
            return spool
        base = Path(path).resolve().parent
        parts = PurePosixPath(entry.key).parts
        for folder in (base, *list(base.parents)[:3]):
            for start in range(len(parts)):
                candidate = folder.joinpath(*parts[start:])
                if candidate.is_file():
                    return open(candidate, "rb")
        raise BackfillError(f"inventory file {entry.key} not found near {path}")

    def chunks(self, position: Position | None) -> Iterator[tuple[Position, list[Item]]]:
        position = position or {}
        start_file, skip = int(position.get("file", 0)), int(position.get("line", 0))
        files = self.manifest.files
        if start_file < len(files) and position.get("key") not in (None, files[start_file].key):
            raise BackfillError("the state file's inventory position does not match the manifest")
        for index, entry in enumerate(files):
            if index < start_file:
                self._done_bytes += entry.size or 0
                continue
            yield from self._file_chunks(index, entry, skip if index == start_file else 0)
            self._done_bytes += entry.size or 0
            self._reader = None

    def _file_chunks(
        self, index: int, entry: InventoryFile, skip: int
    ) -> Iterator[tuple[Position, list[Item]]]:
        col = self._col
        key_i, bucket_i = col["Key"], col.get("Bucket")
        size_i, etag_i = col.get("Size"), col.get("ETag")
        time_i, latest_i, marker_i = (
            col.get("LastModifiedDate"),
            col.get("IsLatest"),
            col.get("IsDeleteMarker"),
        )
        bucket = self.bucket
        with self._open(entry) as raw:
            self._reader = reader = _CountingReader(raw)
            buffered = io.BufferedReader(reader, 1 << 16)
            head = buffered.peek(2)[:2]
            binary: IO[bytes] = (
                gzip.GzipFile(fileobj=buffered) if head == b"\x1f\x8b" else buffered  # type: ignore[assignment]
            )
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            line_no = 0
            items: list[Item] = []
            for row in csv.reader(text):
                line_no += 1
                if line_no <= skip:
                    continue
                if (
                    (bucket_i is not None and row[bucket_i] != bucket)
                    or (marker_i is not None and row[marker_i].lower() == "true")
                    or (latest_i is not None and row[latest_i].lower() == "false")
                ):
                    pass
                else:
                    size_text = row[size_i] if size_i is not None else ""
                    etag_text = row[etag_i] if etag_i is not None else ""
                    items.append(
                        Item(
                            unquote_plus(row[key_i]),
                            int(size_text) if size_text else None,
                            etag_text.strip('"') or None,
                            _parse_inventory_time(row[time_i]) if time_i is not None else None,
                        )
                    )
                if line_no % CHUNK_LINES == 0:
                    yield {"file": index, "key": entry.key, "line": line_no}, items
                    items = []
            yield {"file": index + 1, "key": None, "line": 0}, items
