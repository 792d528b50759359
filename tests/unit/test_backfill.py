"""Backfill building blocks without AWS: message template, filters, token bucket, the resume
tracker, and the key-file and inventory sources."""

import csv
import gzip
import io
import json
import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from dateutil.tz import tzutc
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import backfill_message, parse_body
from infra.backfill.filters import DEFAULT_SUFFIXES, Filters
from infra.backfill.inventory import InventorySource, load_manifest
from infra.backfill.messages import MessageBuilder
from infra.backfill.options import (
    BackfillError,
    parse_s3_url,
    parse_size,
    parse_suffixes,
    parse_time,
)
from infra.backfill.ratelimit import TokenBucket
from infra.backfill.sources import FileSource
from infra.backfill.state import Tracker, read_state, write_json_atomic

TRICKY_KEYS = [
    "plain/photo.jpg",
    "with space.jpg",
    "plus+sign.jpg",
    "percent%25literal%.jpg",
    "ünïcødé/猫 🐱.jpeg",
    "a+b c%2B/x y.PNG",
    'quote"back\\slash.jpg',
    "ctrl\x01char.jpg",
    "~tilde_-.dot/.jpg",
]


# ----------------------------------------------------------------------------------- messages


@pytest.mark.parametrize("key", TRICKY_KEYS)
@pytest.mark.parametrize(
    "modified",
    [
        datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=tzutc()),  # what boto3 returns
        datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 6, 7, 8, 9),  # naive: read as UTC
    ],
)
def test_builder_matches_the_contract_function(key: str, modified: datetime) -> None:
    builder = MessageBuilder("my-bucket")
    expected = backfill_message("my-bucket", key, 1234, "abc-2", modified)
    assert builder.build(key, 1234, "abc-2", modified) == expected
    assert builder.build(key, 1234, '"abc-2"', modified) == expected
    (source,) = parse_body(expected)
    assert (source.key, source.bucket, source.size, source.etag) == (
        key,
        "my-bucket",
        1234,
        "abc-2",
    )


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(min_size=1, max_size=60),
    size=st.integers(min_value=0, max_value=2**40),
    etag=st.one_of(st.from_regex(r"[0-9a-f]{32}(-[0-9]+)?", fullmatch=True), st.text(max_size=12)),
    modified=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_builder_is_byte_identical_for_any_input(
    key: str, size: int, etag: str, modified: datetime
) -> None:
    assert MessageBuilder("b-1.x").build(key, size, etag, modified) == backfill_message(
        "b-1.x", key, size, etag, modified
    )


# ----------------------------------------------------------------------------------- parsing


def test_parsers() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/some/prefix/") == ("bucket", "some/prefix/")
    for bad in ("bucket", "s3://", "http://x/y"):
        with pytest.raises(BackfillError):
            parse_s3_url(bad)
    assert parse_size("1024") == 1024
    assert parse_size("10KB") == 10 * 1024
    assert parse_size("1.5 MiB") == int(1.5 * 2**20)
    with pytest.raises(ValueError):
        parse_size("ten")
    assert parse_time("2024-01-02") == datetime(2024, 1, 2, tzinfo=UTC)
    assert parse_time("2024-01-02T03:04:05+02:00").utcoffset() == timedelta(hours=2)
    assert parse_suffixes(None) == DEFAULT_SUFFIXES
    assert parse_suffixes(["jpg,.PNG", "tif"]) == (".jpg", ".png", ".tif")
    assert parse_suffixes(["*"]) is None


def test_filters() -> None:
    default = Filters()
    assert default.key_ok("a/b.JPG") and default.key_ok("x.heic") and default.key_ok("y.Avif")
    assert (
        not default.key_ok("a/b.txt") and not default.key_ok("dir/") and not default.key_ok("jpg")
    )
    assert Filters(suffixes=None).key_ok("anything")
    assert Filters(prefix="in/").key_ok("in/a.jpg") and not Filters(prefix="in/").key_ok("a.jpg")
    when = datetime(2024, 1, 1, tzinfo=UTC)
    window = Filters(modified_after=when, modified_before=when + timedelta(days=1))
    assert window.metadata_ok(None, when)  # after is inclusive
    assert not window.metadata_ok(None, when - timedelta(microseconds=1))
    assert not window.metadata_ok(None, when + timedelta(days=1))  # before is exclusive
    assert window.metadata_ok(None, None)  # unknown passes (the sender checks after HEAD)
    sized = Filters(min_size=10, max_size=20)
    assert sized.metadata_ok(10, None) and sized.metadata_ok(20, None)
    assert not sized.metadata_ok(9, None) and not sized.metadata_ok(21, None)
    assert sized.needs_size and not sized.needs_time and window.needs_time


# ----------------------------------------------------------------------------------- plumbing


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_averages_the_rate_even_for_batches_above_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=10, clock=clock)
    assert bucket.reserve(10) == 0  # the burst
    assert bucket.reserve(10) == pytest.approx(2.0)  # 10 more at 5/s
    assert bucket.reserve(5) == pytest.approx(3.0)  # queued behind the previous reservation
    clock.now = 3.0
    assert bucket.reserve(1) == pytest.approx(0.2)
    clock.now = 100.0
    assert bucket.reserve(10) == 0  # refilled, capped at the burst
    assert bucket.reserve(1) == pytest.approx(0.2)


def test_a_shared_token_bucket_limits_the_processes_together() -> None:
    """Sender processes rebuild the bucket on the shared state: one rate for all of them."""
    clock = FakeClock()
    here = TokenBucket(rate=5, burst=10, clock=clock)
    state = here.share(multiprocessing.get_context("spawn"))
    there = TokenBucket(rate=5, burst=10, clock=clock, state=state)
    assert here.reserve(10) == 0  # the burst, taken here
    assert there.reserve(5) == pytest.approx(1.0)  # there, it is already spent
    assert here.reserve(5) == pytest.approx(2.0)


def test_tracker_commits_only_a_contiguous_prefix() -> None:
    tracker = Tracker({"line": 0})
    first, second, third = (tracker.open({"line": n}) for n in (10, 20, 30))
    for chunk in (first, second, third):
        tracker.add_unit(chunk)
        tracker.seal(chunk, listed=10, filtered=0)
    tracker.unit_done(third.id, {"sent": 10})  # units carry ids: another process sends them
    tracker.unit_done(second.id, {"sent": 10})
    assert tracker.position == {"line": 0}  # the first is still in flight: no gap allowed
    tracker.unit_done(first.id, {"sent": 10})
    assert tracker.position == {"line": 30}
    assert tracker.committed["sent"] == 30 and tracker.committed["listed"] == 30
    unsealed = tracker.open({"line": 40})  # the producer stopped part-way through this chunk
    assert tracker.position == {"line": 30}
    assert tracker.snapshot()[3] == 1 and unsealed.units == 0


def test_state_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"version": 1, "position": {"line": 3}})
    assert read_state(target) == {"version": 1, "position": {"line": 3}}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    target.write_text("{}")
    with pytest.raises(BackfillError):
        read_state(target)


# ----------------------------------------------------------------------------------- sources


def test_file_source_chunks_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.backfill.sources.CHUNK_LINES", 3)
    path = tmp_path / "keys.txt"
    path.write_text("a.jpg\nb c.jpg\n\nd+e.jpg\r\nü.jpg\nf.jpg\ng.jpg\n", encoding="utf-8")
    chunks = list(FileSource(str(path)).chunks(None))
    assert [pos for pos, _ in chunks] == [{"line": 3}, {"line": 6}, {"line": 7}]
    assert [item[0] for _, items in chunks for item in items] == [
        "a.jpg", "b c.jpg", "d+e.jpg", "ü.jpg", "f.jpg", "g.jpg",
    ]  # fmt: skip
    resumed = list(FileSource(str(path)).chunks({"line": 3}))
    assert [item[0] for _, items in resumed for item in items] == [
        "d+e.jpg", "ü.jpg", "f.jpg", "g.jpg",
    ]  # fmt: skip
    stdin = io.BytesIO(path.read_bytes())
    piped = list(FileSource("-", stdin=stdin).chunks({"line": 6}))
    assert [item[0] for _, items in piped for item in items] == ["g.jpg"]
    assert FileSource(str(path)).progress()[1] == path.stat().st_size


def write_inventory(
    folder: Path, bucket: str, rows: list[list[str]], schema: str, per_file: int = 3
) -> Path:
    """A manifest.json and gzipped CSV files the way S3 Inventory writes them."""
    files = []
    for n, start in enumerate(range(0, len(rows), per_file)):
        name = f"data/part-{n}.csv.gz"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / name, "wt", encoding="utf-8", newline="") as out:
            csv.writer(out, quoting=csv.QUOTE_ALL).writerows(rows[start : start + per_file])
        files.append({"key": f"inventory/{name}", "size": (folder / name).stat().st_size})
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::inventory-dest",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": files,
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_inventory_source_reads_the_schema_decodes_keys_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infra.backfill.inventory.CHUNK_LINES", 2)
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
    rows = [
        ["src", quote("a b+c.jpg"), "v1", "true", "false", "10", "2024-01-01T00:00:00.000Z", "e1"],
        ["src", quote("ü/猫.png"), "v1", "true", "false", "20", "2024-01-02T00:00:00.000Z", "e2"],
        ["src", "old.jpg", "v0", "false", "false", "30", "2023-01-01T00:00:00.000Z", "e3"],
        ["src", "gone.jpg", "v2", "true", "true", "", "2024-01-03T00:00:00.000Z", ""],
        ["other", "elsewhere.jpg", "v1", "true", "false", "5", "2024-01-01T00:00:00.000Z", "e5"],
        ["src", "plus+space.jpg", "v1", "true", "false", "40", "2024-01-04T05:06:07.890Z", "e6"],
    ]
    manifest = load_manifest(str(write_inventory(tmp_path, "src", rows, schema)), None)
    assert manifest.columns[1] == "Key" and len(manifest.files) == 2
    source = InventorySource(manifest, None)
    chunks = list(source.chunks(None))
    items = [item for _, chunk in chunks for item in chunk]
    assert [i[0] for i in items] == ["a b+c.jpg", "ü/猫.png", "plus space.jpg"]
    assert items[0][1:] == (10, "e1", datetime(2024, 1, 1, tzinfo=UTC))
    assert items[2][3] == datetime(2024, 1, 4, 5, 6, 7, 890000, tzinfo=UTC)
    positions = [pos for pos, _ in chunks]
    assert positions[0] == {"file": 0, "key": "inventory/data/part-0.csv.gz", "line": 2}
    assert positions[-1] == {"file": 2, "key": None, "line": 0}
    resumed = InventorySource(manifest, None).chunks({"file": 1, "key": manifest.files[1].key})
    assert [i[0] for _, chunk in resumed for i in chunk] == ["plus space.jpg"]
    mid_file = InventorySource(manifest, None).chunks(positions[0])
    assert [i[0] for _, chunk in mid_file for i in chunk] == ["plus space.jpg"]
    with pytest.raises(BackfillError):
        list(InventorySource(manifest, None).chunks({"file": 1, "key": "another", "line": 0}))


def test_inventory_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"fileFormat": "ORC", "fileSchema": "x", "files": []}))
    with pytest.raises(BackfillError, match="ORC"):
        load_manifest(str(path), None)
    path.write_text(json.dumps({"fileFormat": "CSV", "fileSchema": "Bucket, Size", "files": []}))
    with pytest.raises(BackfillError, match="Key"):
        load_manifest(str(path), None)
    with pytest.raises(BackfillError):
        load_manifest(str(tmp_path / "missing.json"), None)


def test_the_command_registers_as_an_imgpipe_sub_command() -> None:
    import argparse

    from infra.commands import backfill

    parser = argparse.ArgumentParser(prog="imgpipe")
    backfill.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backfill", "s3://b/p/", "--queue-url", "q", "--min-size", "1KB"])
    assert args.run is backfill.run and args.target == "s3://b/p/" and args.min_size == 1024
    options = backfill.options_from_args(args)
    assert (options.bucket, options.filters.prefix, options.queue_url) == ("b", "p/", "q")
    assert options.failures_path == Path("imgpipe-backfill-failures.jsonl")
