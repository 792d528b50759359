"""An image's life through ``core.pipeline`` over the fakes of its ports: overwrites get new
keys and lose the old ones, removals leave a DELETED tombstone and no renditions, profiles
decide what counts as a duplicate, and no order of events lets an older one win."""

from dataclasses import replace
from datetime import timedelta

import pytest
from pipeline_fakes import RAW, SETTINGS, T0, FakeCatalog, FakeStorage, World, wide

from core.catalog import ImageRecord, Rendition, Status
from core.errors import Transient
from core.events import SourceObject, iso_ms
from core.imaging import parse_renditions
from core.pipeline import SKIPPED, output_key, source_version

DEFAULT_NAMES = ("thumb", "mobile", "720p", "1080p")


@pytest.fixture
def world() -> World:
    return World(FakeStorage(), FakeCatalog())


def keys_for(key: str, etag: str, profile: str = SETTINGS.profile) -> set[str]:
    version = source_version(etag, profile)
    return {
        output_key(n, key, "webp", bucket=RAW, raw_bucket=RAW, version=version)
        for n in DEFAULT_NAMES
    }


def removal(source: SourceObject, later_s: int = 60) -> SourceObject:
    """The ObjectRemoved record that follows ``source``."""
    moment = iso_ms(T0 + timedelta(seconds=later_s))
    return replace(source, size=0, etag="", event_time=moment, removed=True)


def test_an_overwrite_gets_new_keys_and_the_old_ones_are_deleted(world: World) -> None:
    first = world.upload("photo.jpg", wide(), etag="aaaaaaaa11")
    assert world.run(first).status == Status.PROCESSED
    second = replace(
        world.upload("photo.jpg", wide(1900, 500), etag="bbbbbbbb22"),
        event_time=iso_ms(T0 + timedelta(seconds=5)),
    )
    outcome = world.run(second)
    assert outcome.status == Status.PROCESSED and outcome.leftover == ()
    record = world.record(second)
    assert record is not None and record.output_keys == keys_for("photo.jpg", "bbbbbbbb22")
    assert set(world.storage.puts) == keys_for("photo.jpg", "bbbbbbbb22"), "old ones gone"
    assert set(world.storage.deleted) == keys_for("photo.jpg", "aaaaaaaa11")


def test_a_key_the_new_item_still_uses_is_never_deleted(world: World) -> None:
    """Renditions may share one stored object: only keys the new item drops are deleted."""
    source = world.upload("shared.jpg", wide(), etag="cccccccc33")
    shared = min(keys_for("shared.jpg", "cccccccc33"))
    world.catalog.items[source.image_id] = ImageRecord(
        RAW, "shared.jpg", Status.PROCESSED, etag="older", event_order="0",
        renditions=(Rendition("a", shared, "webp", 1, 1, 1), Rendition("b", "b/old", "webp", 1, 1, 1),
                    Rendition("c", "b/old", "webp", 1, 1, 1)),
    ).to_item()  # fmt: skip
    assert world.run(source).status == Status.PROCESSED
    assert world.storage.deleted == ["b/old"]
    assert shared in world.storage.puts


def test_a_removal_deletes_the_renditions_and_leaves_a_tombstone(world: World) -> None:
    source = world.upload("gone.jpg", wide(), etag="dddddddd44")
    assert world.run(source).status == Status.PROCESSED
    outcome = world.run(removal(source))
    assert outcome.status == Status.DELETED
    assert world.storage.puts == {} and set(world.storage.deleted) == keys_for(
        "gone.jpg", "dddddddd44"
    )
    record = world.record(source)
    assert record is not None and (record.status, record.renditions) == (Status.DELETED, ())
    assert record.deleted_at == "2024-05-01T12:00:01.000Z"  # the world's clock, first tick
    assert record.expires_at == int((T0 + timedelta(seconds=1, days=30)).timestamp())
    assert world.catalog.items[source.image_id]["expires_at"] == record.expires_at


def test_a_removal_before_its_creation_wins_and_the_creation_does_nothing(world: World) -> None:
    source = world.upload("early.jpg", wide(), etag="eeeeeeee55")
    assert world.run(removal(source)).status == Status.DELETED
    late = world.run(source)
    assert (late.status, late.reason) == (SKIPPED, "stale")
    assert world.storage.gets == [] and world.storage.puts == {}
    record = world.record(source)
    assert record is not None and record.status == Status.DELETED


def test_the_same_version_created_again_after_its_removal_stays_deleted(world: World) -> None:
    source = world.upload("again.jpg", wide(), etag="ffffffff66")
    world.run(source)
    world.run(removal(source))
    backfilled = replace(source, sequencer=None)  # a redelivered or backfilled creation
    assert (world.run(backfilled).status, world.run(backfilled).reason) == (SKIPPED, "stale")
    assert world.storage.puts == {}


def test_an_upload_after_the_removal_is_processed(world: World) -> None:
    source = world.upload("back.jpg", wide(), etag="1111111177")
    world.run(source)
    world.run(removal(source))
    reborn = replace(source, event_time=iso_ms(T0 + timedelta(minutes=5)))
    assert world.run(reborn).status == Status.PROCESSED
    assert set(world.storage.puts) == keys_for("back.jpg", "1111111177")


def test_a_removal_older_than_the_recorded_upload_does_nothing(world: World) -> None:
    source = replace(
        world.upload("kept.jpg", wide(), etag="2222222288"),
        event_time=iso_ms(T0 + timedelta(minutes=5)),
    )
    world.run(source)
    outcome = world.run(removal(source, later_s=-60))
    assert (outcome.status, outcome.reason) == (SKIPPED, "stale")
    assert world.storage.deleted == [] and set(world.storage.puts) == keys_for(
        "kept.jpg", "2222222288"
    )


def test_a_write_lost_to_a_newer_removal_deletes_its_own_outputs(world: World) -> None:
    """The removal lands while the creation renders: the creation's conditional write loses,
    and the renditions it had put are deleted, so nothing outlives the deleted source."""
    source = world.upload("race.jpg", wide(), etag="3333333399")
    tombstone = ImageRecord(RAW, "race.jpg", Status.DELETED, event_order=removal(source).order)
    world.catalog.before_put = lambda: world.catalog.items.update(
        {source.image_id: tombstone.to_item()}
    )
    outcome = world.run(source)
    assert (outcome.status, outcome.reason) == (SKIPPED, "stale")
    assert world.storage.puts == {}
    assert set(world.storage.deleted) == keys_for("race.jpg", "3333333399")


def test_a_failed_cleanup_keeps_the_outcome_and_lists_the_leftovers(world: World) -> None:
    source = world.upload("stuck.jpg", wide(), etag="4444444400")
    world.run(source)
    world.storage.delete_failure = Transient("DeleteObject: SlowDown")
    outcome = world.run(removal(source))
    assert outcome.status == Status.DELETED
    assert set(outcome.leftover) == keys_for("stuck.jpg", "4444444400")
    record = world.record(source)
    assert record is not None and record.status == Status.DELETED


def test_a_new_profile_renders_the_same_version_again_and_drops_the_old_keys(
    world: World,
) -> None:
    source = world.upload("preset.jpg", wide(), etag="5555555511")
    assert world.run(source).record is not None
    assert world.run(source).reason == "duplicate"  # same version, same profile
    thumbs = replace(SETTINGS, renditions=parse_renditions("thumbs"))
    assert thumbs.profile != SETTINGS.profile
    outcome = world.run(source, thumbs)
    assert outcome.status == Status.PROCESSED and outcome.record is not None
    assert outcome.record.profile == thumbs.profile
    new_thumb = output_key(
        "thumb", "preset.jpg", "webp", bucket=RAW, raw_bucket=RAW,
        version=source_version("5555555511", thumbs.profile),
    )  # fmt: skip
    assert set(world.storage.puts) == {new_thumb}
    assert set(world.storage.deleted) == keys_for("preset.jpg", "5555555511")


def test_reprocessing_the_recorded_version_keeps_its_newer_order(world: World) -> None:
    """A backfill message's order is the object's LastModified, usually a little before S3's
    event time: it may render the recorded version again, and the record keeps the newer
    order, so an older version's event still loses."""
    source = replace(world.upload("re.jpg", wide(), etag="6666666622"), sequencer="00FF")
    world.run(source)
    recorded = world.record(source)
    assert recorded is not None
    backfill = replace(source, event_time=iso_ms(T0 - timedelta(milliseconds=3)), sequencer=None)
    outcome = world.run(backfill, replace(SETTINGS, renditions=parse_renditions("thumbs")))
    assert outcome.status == Status.PROCESSED
    record = world.record(source)
    assert record is not None and record.event_order == recorded.event_order
    assert record.event_time == recorded.event_time
    older_version = replace(backfill, etag="0000000000", event_time=iso_ms(T0 - timedelta(days=1)))
    assert world.run(older_version).reason == "stale"
