"""``core.pipeline.process_source`` over in-memory fakes of its two ports: every outcome of
DESIGN.md's taxonomy, with no AWS at all."""

import base64
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from imaging_fixtures import many_frame_gif
from pipeline_fakes import (
    OUTPUT,
    RAW,
    SETTINGS,
    T0,
    FakeCatalog,
    FakeStorage,
    StoredObject,
    World,
    jpeg,
    wide,
)

from core.catalog import ImageRecord, Stage, Status
from core.errors import AccessDenied, Transient
from core.events import iso_ms
from core.pipeline import SKIPPED, output_key, source_version
from core.ports import Deadline, DeadlineExceeded
from core.settings import Settings

PROCESSED_FIELDS = {
    "image_id", "bucket", "key", "etag", "size", "version_id", "event_time", "event_order",
    "started_at", "attempts", "renditions", "status", "reason", "format", "width", "height",
    "timings_ms", "profile", "finished_at", "placeholder", "color",
}  # fmt: skip
FAILED_FIELDS = {
    "image_id", "bucket", "key", "etag", "size", "version_id", "event_time", "event_order",
    "started_at", "attempts", "renditions", "status", "reason", "detail", "finished_at",
}  # fmt: skip


@pytest.fixture
def world() -> World:
    return World(FakeStorage(), FakeCatalog())


def test_processed_renders_stores_and_records(world: World) -> None:
    """A source larger than every rendition: four distinct outputs, four keys."""
    source = world.upload("uploads/u1/cat photo.jpg", wide(), etag="abc")
    outcome = world.run(source, attempts=2)

    assert (outcome.status, outcome.reason) == (Status.PROCESSED, None)
    item = world.catalog.items[source.image_id]
    assert set(item) == PROCESSED_FIELDS, "the table item keeps exactly its shape"
    record = world.record(source)
    assert record is not None and record == outcome.record
    assert (record.status, record.reason, record.etag, record.size) == (
        Status.PROCESSED, None, "abc", len(wide()),
    )  # fmt: skip
    assert (record.format, record.width, record.height) == ("jpeg", 2000, 400)
    assert record.placeholder and len(base64.b64decode(record.placeholder)) <= 25
    assert record.color and re.fullmatch(r"#[0-9a-f]{6}", record.color)
    assert (record.attempts, record.event_order) == (2, source.order)
    assert record.started_at == "2024-05-01T12:00:01.000Z"
    assert record.finished_at == "2024-05-01T12:00:02.000Z"
    assert record.timings_ms is not None
    assert list(record.timings_ms.to_item()) == [stage.value for stage in Stage]
    assert outcome.processing_ms == pytest.approx(record.timings_ms.total_ms)

    assert [r.name for r in record.renditions] == ["thumb", "mobile", "720p", "1080p"]
    assert set(world.storage.puts) == {r.key for r in record.renditions}
    for rendition in record.renditions:
        assert rendition.key == output_key(
            rendition.name,
            source.key,
            "webp",
            bucket=RAW,
            raw_bucket=RAW,
            version=source_version("abc", SETTINGS.profile),
        )
        data, content_type, metadata = world.storage.puts[rendition.key]
        assert (content_type, rendition.format, rendition.bytes) == (
            "image/webp",
            "webp",
            len(data),
        )
        assert metadata == {"source-bucket": RAW, "source-key": source.key, "source-etag": "abc"}
    assert outcome.bytes_out == sum(r.bytes for r in record.renditions)


def test_identical_renditions_are_stored_once_and_share_its_key(world: World) -> None:
    """96 x 64 is smaller than mobile, 720p and 1080p: all three keep it as it is, so their
    bytes are equal and one PUT serves them, under the first one's key."""
    source = world.upload("uploads/u1/small.jpg", jpeg(96, 64), etag="abc")
    outcome = world.run(source)
    assert outcome.status == Status.PROCESSED and outcome.record is not None
    keys = {r.name: r.key for r in outcome.record.renditions}
    version = source_version("abc", SETTINGS.profile)
    expected = {
        name: output_key(name, source.key, "webp", bucket=RAW, raw_bucket=RAW, version=version)
        for name in ("thumb", "mobile")
    }
    assert keys == {**expected, "720p": expected["mobile"], "1080p": expected["mobile"]}
    assert set(world.storage.puts) == set(expected.values())
    for rendition in outcome.record.renditions:
        assert (rendition.width, rendition.height) == (
            (200, 200) if rendition.name == "thumb" else (96, 64)
        )
        assert len(world.storage.puts[rendition.key][0]) == rendition.bytes
    assert outcome.bytes_out == sum(len(data) for data, _, _ in world.storage.puts.values())


def test_a_source_from_another_bucket_gets_its_own_output_keys(world: World) -> None:
    source = world.upload("a.jpg", wide(), bucket="backfill-source")
    outcome = world.run(source)
    assert outcome.status == Status.PROCESSED and outcome.record is not None
    version = source_version(source.etag, SETTINGS.profile)
    assert {r.key for r in outcome.record.renditions} == {
        f"{name}@backfill-source/a.jpg.{version}.webp"
        for name in ("thumb", "mobile", "720p", "1080p")
    }


@pytest.mark.parametrize(
    ("data", "settings", "reason"),
    [
        (b"", SETTINGS, "empty"),
        (b"this is not an image at all", SETTINGS, "unsupported_format"),
        (jpeg()[: len(jpeg()) // 2], SETTINGS, "corrupt"),
        (jpeg(), replace(SETTINGS, max_pixels=96 * 64 - 1), "too_many_pixels"),
        (many_frame_gif(1001), SETTINGS, "too_many_frames"),
    ],
)
def test_what_the_engine_rejects_is_recorded_failed(
    world: World, data: bytes, settings: Settings, reason: str
) -> None:
    source = world.upload("poison.jpg", data)
    outcome = world.run(source, settings)
    assert (outcome.status, outcome.reason) == (Status.FAILED, reason)
    assert set(world.catalog.items[source.image_id]) == FAILED_FIELDS
    record = world.record(source)
    assert record is not None and record == outcome.record
    assert (record.status, record.reason, record.renditions) == (Status.FAILED, reason, ())
    assert record.detail is not None and record.timings_ms is None
    assert world.storage.puts == {} and outcome.bytes_out == 0


def test_too_large_by_the_event_size_is_failed_before_any_read(world: World) -> None:
    source = world.upload("big.jpg", jpeg())
    outcome = world.run(source, replace(SETTINGS, max_bytes=100))
    assert (outcome.status, outcome.reason) == (Status.FAILED, "too_large")
    assert world.storage.gets == []
    record = world.record(source)
    assert record is not None and record.reason == "too_large"


def test_too_large_by_the_stored_size_is_failed(world: World) -> None:
    """The event under-reported the size: the object's own length rejects it."""
    source = replace(world.upload("grown.jpg", jpeg()), size=10)
    outcome = world.run(source, replace(SETTINGS, max_bytes=100))
    assert (outcome.status, outcome.reason) == (Status.FAILED, "too_large")
    assert world.storage.gets == ["grown.jpg"]


def test_a_source_this_function_may_not_read_is_failed_access_denied(world: World) -> None:
    source = world.upload("denied.jpg", jpeg(), bucket="locked")
    world.storage.unreadable.add("locked")
    outcome = world.run(source)
    assert (outcome.status, outcome.reason) == (Status.FAILED, "access_denied")
    record = world.record(source)
    assert record is not None and record.status == Status.FAILED
    assert record.detail is not None and "s3://locked/denied.jpg" in record.detail


def test_a_missing_source_is_skipped_and_not_recorded(world: World) -> None:
    source = world.upload("gone.jpg", jpeg())
    del world.storage.objects[(RAW, "gone.jpg")]
    outcome = world.run(source)
    assert (outcome.status, outcome.reason, outcome.record) == (SKIPPED, "source_missing", None)
    assert world.catalog.items == {}


def test_a_replaced_source_makes_the_event_stale(world: World) -> None:
    source = world.upload("photo.jpg", jpeg(), etag="old")
    world.upload("photo.jpg", jpeg(50, 50), etag="new")
    outcome = world.run(source)
    assert (outcome.status, outcome.reason) == (SKIPPED, "stale")
    assert world.catalog.items == {} and world.storage.puts == {}


def test_the_same_etag_processed_again_is_a_duplicate(world: World) -> None:
    source = world.upload("dup.jpg", jpeg())
    first = world.run(source)
    assert first.status == Status.PROCESSED
    stored, world.storage.puts = dict(world.catalog.items), {}
    again = world.run(source, attempts=2)
    assert (again.status, again.reason) == (SKIPPED, "duplicate")
    assert world.storage.gets == ["dup.jpg"], "a duplicate is not even read"
    assert world.storage.puts == {} and world.catalog.items == stored


@pytest.mark.parametrize(
    ("status", "etag"), [(Status.FAILED, "same"), (Status.PROCESSED, "another")]
)
def test_only_a_processed_record_of_the_same_etag_is_a_duplicate(
    world: World, status: Status, etag: str
) -> None:
    source = world.upload("again.jpg", jpeg(), etag="same")
    earlier = ImageRecord(RAW, "again.jpg", status, etag=etag, event_order="0")
    world.catalog.items[source.image_id] = earlier.to_item()
    outcome = world.run(source)
    assert outcome.status == Status.PROCESSED


@pytest.mark.parametrize(
    "failure", [Transient("GetObject: SlowDown"), AccessDenied("PutObject: AccessDenied")]
)
def test_transient_storage_errors_propagate_and_nothing_is_recorded(
    world: World, failure: Exception
) -> None:
    source = world.upload("throttled.jpg", jpeg())
    world.storage.failure = failure
    with pytest.raises(type(failure)):
        world.run(source)
    assert world.catalog.items == {}


def test_transient_catalog_errors_propagate(world: World) -> None:
    source = world.upload("table.jpg", jpeg())
    world.catalog.failure = AccessDenied("GetItem: AccessDeniedException")
    with pytest.raises(AccessDenied):
        world.run(source)
    assert world.storage.gets == []


def test_an_unexpected_error_propagates(world: World) -> None:
    source = world.upload("bug.jpg", jpeg())
    world.storage.failure = RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        world.run(source)


def test_an_older_event_never_overwrites_a_newer_result(world: World) -> None:
    source = world.upload("order.jpg", jpeg(), etag="v1")
    world.upload("order.jpg", jpeg(50, 50), etag="v2")
    newer = replace(source, etag="v2", event_time=iso_ms(T0 + timedelta(hours=1)))
    assert world.run(newer).status == Status.PROCESSED
    written = dict(world.catalog.items[source.image_id])
    world.storage.objects[(RAW, "order.jpg")] = StoredObject(jpeg(), "v1")  # S3 not yet caught up
    outcome = world.run(source)
    assert (outcome.status, outcome.reason) == (SKIPPED, "stale")
    assert world.catalog.items[source.image_id] == written
    assert world.storage.gets == ["order.jpg"], "the older event is not even read"


def test_a_newer_event_replaces_an_older_result(world: World) -> None:
    source = world.upload("order.jpg", jpeg(), etag="v1")
    older = replace(source, event_time=iso_ms(T0 - timedelta(hours=1)))
    world.catalog.items[source.image_id] = ImageRecord(
        RAW, "order.jpg", Status.FAILED, reason="corrupt", event_order=older.order
    ).to_item()
    assert world.run(source).status == Status.PROCESSED
    record = world.record(source)
    assert record is not None and record.event_order == source.order


def test_the_output_bucket_is_never_processed(world: World) -> None:
    source = world.upload("thumb/a.jpg.webp", b"webp", bucket=OUTPUT)
    with pytest.raises(ValueError, match="recursion guard"):
        world.run(source)
    assert world.storage.gets == []


# ------------------------------------------------------------------------------------- deadlines


def test_every_call_through_the_ports_carries_the_records_deadline(world: World) -> None:
    deadline = Deadline(60)
    world.run(world.upload("timed.jpg", wide()), deadline=deadline)
    assert len(world.storage.deadlines) == 1 + 4  # the fetch, and a put per rendition
    assert len(world.catalog.deadlines) >= 2  # the duplicate lookup, and the record
    assert all(d is deadline for d in world.storage.deadlines + world.catalog.deadlines)


def test_a_record_whose_fetch_ran_long_stops_before_decoding(world: World) -> None:
    """The fetch returns past the deadline: nothing is decoded, stored or recorded."""
    world.storage.call_s = 10
    deadline = Deadline(5, clock=lambda: world.storage.clock[0])
    with pytest.raises(DeadlineExceeded, match="decode not started"):
        world.run(world.upload("slow.jpg", jpeg()), deadline=deadline)
    assert world.storage.gets == ["slow.jpg"]
    assert world.storage.puts == {} and world.catalog.items == {}


def test_a_record_running_short_while_storing_stops_before_the_next_put(world: World) -> None:
    """One PUT at a time, so that the clock is known at each: no PUT starts past the deadline."""
    world.storage.call_s = 1
    deadline = Deadline(2.5, clock=lambda: world.storage.clock[0])  # the get, then two puts
    with pytest.raises(DeadlineExceeded, match="store 720p not started"):
        serial = replace(SETTINGS, parallel_puts=1)
        world.run(world.upload("slow.jpg", wide()), serial, deadline=deadline)
    assert len(world.storage.puts) == 2 and world.catalog.items == {}


@pytest.mark.parametrize("parallel_puts", [1, 2, 4])
def test_a_records_renditions_are_written_parallel_puts_at_a_time(
    world: World, parallel_puts: int
) -> None:
    world.storage.put_wait_s = 0.05
    outcome = world.run(
        world.upload("wide.jpg", wide()), replace(SETTINGS, parallel_puts=parallel_puts)
    )
    assert outcome.status == Status.PROCESSED and len(world.storage.puts) == 4
    assert world.storage.most_puts_at_once == parallel_puts


def test_a_rejected_image_is_not_recorded_past_the_deadline(world: World) -> None:
    world.storage.call_s = 10
    deadline = Deadline(5, clock=lambda: world.storage.clock[0])
    with pytest.raises(DeadlineExceeded, match="decode not started"):
        world.run(world.upload("bad.jpg", b"not an image"), deadline=deadline)
    assert world.catalog.items == {}


def test_a_record_running_short_while_rendering_stops_before_the_next_rendition(
    world: World,
) -> None:
    """The engine asks the deadline before the decode and before each rendition."""
    checks: list[str] = []

    class Recording(Deadline):
        def check(self, stage: str) -> None:
            checks.append(stage)
            if checks.count("rendition") == 3:
                raise DeadlineExceeded(f"{stage} not started: the record's deadline passed")

    with pytest.raises(DeadlineExceeded, match="rendition not started"):
        world.run(world.upload("big.jpg", jpeg(1200, 800)), deadline=Recording(60))
    assert checks == ["lookup", "fetch", "decode", "rendition", "rendition", "rendition"]
    assert world.storage.puts == {} and world.catalog.items == {}
