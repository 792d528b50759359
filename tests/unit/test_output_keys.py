"""Output keys: deterministic, carrying the source's version, and never shared by two sources
or two versions, whichever bucket they come from."""

from hypothesis import given
from hypothesis import strategies as st

from core.imaging.encode import OUTPUT_FORMATS
from core.pipeline import output_key, source_version

RAW = "imgpipe-raw-123456789012-eu-west-1"
RENDITIONS = ("thumb", "mobile", "720p", "1080p")

rendition_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", fullmatch=True)
bucket_names = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)
# Keys are any text; bias them towards the characters that could fool a parser of the layout.
keys = st.text(st.sampled_from("/@.-_ aZ9ü%+") | st.characters(), min_size=1, max_size=120)
extensions = st.sampled_from(sorted({f.extension for f in OUTPUT_FORMATS.values()}))
# S3 ETags: 32 hex digits, with "-N" for multipart uploads; empty when a message has none.
etags = st.from_regex(r"([0-9a-f]{32}(-[0-9]{1,5})?)?", fullmatch=True)
profiles = st.from_regex(r"[0-9a-f]{8}", fullmatch=True)
V1 = source_version("9f3c5e7a0b1c2d3e4f5a6b7c8d9e0f1a", "1c9e03aa")


def keys_of(bucket: str, key: str, version: str = V1) -> set[str]:
    return {
        output_key(r, key, "webp", bucket=bucket, raw_bucket=RAW, version=version)
        for r in RENDITIONS
    }


def source_of(output: str) -> tuple[str, str, str, str, str]:
    """The contract read backwards: the first segment is ``{rendition}[@{bucket}]``, the
    extension follows the last dot and the version the one before. That this inverse exists
    proves no two sources, or two versions of one, collide."""
    folder, _, rest = output.partition("/")
    rendition, _, bucket = folder.partition("@")
    rest, _, extension = rest.rpartition(".")
    key, _, version = rest.rpartition(".")
    return rendition, bucket or RAW, key, version, extension


def test_raw_bucket_sources_keep_the_plain_layout_with_the_version() -> None:
    key = output_key(
        "thumb", "uploads/9f3c/cat.heic", "webp", bucket=RAW, raw_bucket=RAW, version=V1
    )
    assert key == "thumb/uploads/9f3c/cat.heic.9f3c5e7a-1c9e03aa.webp"


def test_the_version_is_the_etag_prefix_and_the_profile() -> None:
    assert source_version('"d41d8cd98f00b204e9800998ecf8427e"', "0badc0de") == "d41d8cd9-0badc0de"
    assert source_version("3858f62230ac3c915f300c664312c63f-5", "0badc0de") == "3858f622-0badc0de"
    assert source_version("", "0badc0de") == "00000000-0badc0de"  # a message without ETag


def test_a_new_version_or_profile_gets_new_keys_and_the_same_one_the_same() -> None:
    v2 = source_version("0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a", "1c9e03aa")
    v1_new_profile = source_version("9f3c5e7a0b1c2d3e4f5a6b7c8d9e0f1a", "77aa77aa")
    assert keys_of(RAW, "a.jpg") == keys_of(RAW, "a.jpg")  # a retry overwrites its own output
    assert keys_of(RAW, "a.jpg").isdisjoint(keys_of(RAW, "a.jpg", v2))
    assert keys_of(RAW, "a.jpg").isdisjoint(keys_of(RAW, "a.jpg", v1_new_profile))


def test_the_same_key_in_three_buckets_gives_three_disjoint_sets() -> None:
    raw, other, third = keys_of(RAW, "a.jpg"), keys_of("other", "a.jpg"), keys_of("third", "a.jpg")
    assert f"thumb/a.jpg.{V1}.webp" in raw
    assert f"thumb@other/a.jpg.{V1}.webp" in other and f"thumb@third/a.jpg.{V1}.webp" in third
    assert len(raw | other | third) == 3 * len(RENDITIONS)


def test_a_raw_key_shaped_like_another_buckets_folder_cannot_collide() -> None:
    mimic = output_key("thumb", "thumb@other/a.jpg", "webp", bucket=RAW, raw_bucket=RAW, version=V1)
    assert mimic == f"thumb/thumb@other/a.jpg.{V1}.webp"
    assert mimic not in keys_of("other", "a.jpg")
    assert keys_of(RAW, "thumb@other/a.jpg").isdisjoint(keys_of("other", "a.jpg"))


@given(rendition_names, st.one_of(st.just(RAW), bucket_names), keys, etags, profiles, extensions)
def test_every_output_key_names_exactly_one_source_version(
    rendition: str, bucket: str, key: str, etag: str, profile: str, extension: str
) -> None:
    version = source_version(etag, profile)
    output = output_key(rendition, key, extension, bucket=bucket, raw_bucket=RAW, version=version)
    assert source_of(output) == (rendition, bucket, key, version, extension)
