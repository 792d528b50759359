"""The streams reconcile compares: the images table (scanned once, sorted on disk) and the two
bucket listings (already sorted by S3)."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final, NamedTuple

from core.catalog import Status
from infra.reconcile.sorting import ExternalSorter

SCAN_PAGE: Final = 1000  # items per Scan page (each page is also one progress step)


class Listed(NamedTuple):
    """One object of a listing."""

    key: str
    etag: str
    size: int
    modified: datetime


class Scanned(NamedTuple):
    """What the table's items give: the raw bucket's images, and every referenced output."""

    images: ExternalSorter  # rows (key, status, etag) of items whose source is the raw bucket
    outputs: ExternalSorter  # rows (output key,) of every item's renditions (repeats kept)
    other_buckets: int  # items whose source is another bucket (backfill sources): not compared


def scan_table(
    dynamodb: Any,
    table: str,
    raw_bucket: str,
    make_sorter: Callable[[], ExternalSorter],
    progress: Callable[[int], bool],
) -> Scanned | None:
    """Scan ``table`` page by page (projecting only what is compared); ``progress`` gets the
    items of each page and returns False to stop (then None: the scan is incomplete)."""
    images, outputs, others = make_sorter(), make_sorter(), 0
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="image_id, #s, etag, renditions",
        ExpressionAttributeNames={"#s": "status"},
        PaginationConfig={"PageSize": SCAN_PAGE},
    )
    prefix = f"{raw_bucket}/"
    for page in pages:
        for item in page.get("Items", []):
            image_id = item["image_id"]["S"]
            for rendition in item.get("renditions", {}).get("L", []):
                outputs.add((rendition["M"]["key"]["S"],))
            if not image_id.startswith(prefix):
                others += 1
                continue
            status = item.get("status", {}).get("S", Status.FAILED.value)
            images.add((image_id[len(prefix) :], status, item.get("etag", {}).get("S", "")))
        if not progress(len(page.get("Items", []))):
            return None
    return Scanned(images, outputs, others)


def list_bucket(
    s3: Any, bucket: str, progress: Callable[[int], bool], page_size: int = 1000
) -> Iterator[Listed]:
    """Every object of ``bucket`` in key order; stops early when ``progress`` says so."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        contents = page.get("Contents", [])
        for obj in contents:
            yield Listed(obj["Key"], str(obj.get("ETag", "")).strip('"'), obj["Size"],
                         obj["LastModified"])  # fmt: skip
        if not progress(len(contents)):
            return
