"""Output keys: deterministic, and never shared by two sources, whichever bucket they come from."""

from hypothesis import given
from hypothesis import strategies as st

from core.imaging.encode import OUTPUT_FORMATS
from core.pipeline import output_key

RAW = "imgpipe-raw-123456789012-eu-west-1"
RENDITIONS = ("thumb", "mobile", "720p", "1080p")

rendition_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", fullmatch=True)
bucket_names = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)
# Keys are any text; bias them towards the characters that could fool a parser of the layout.
keys = st.text(st.sampled_from("/@.-_ aZ9ü%+") | st.characters(), min_size=1, max_size=120)
extensions = st.sampled_from(sorted({f.extension for f in OUTPUT_FORMATS.values()}))


def keys_of(bucket: str, key: str) -> set[str]:
    return {output_key(r, key, "webp", bucket=bucket, raw_bucket=RAW) for r in RENDITIONS}


def source_of(output: str) -> tuple[str, str, str, str]:
    """The contract read backwards: the first segment is ``{rendition}[@{bucket}]`` and the
    extension follows the last dot. That this inverse exists proves no two sources collide."""
    folder, _, rest = output.partition("/")
    rendition, _, bucket = folder.partition("@")
    key, _, extension = rest.rpartition(".")
    return rendition, bucket or RAW, key, extension


def test_raw_bucket_sources_keep_the_plain_layout() -> None:
    assert output_key("thumb", "uploads/9f3c/cat.heic", "webp", bucket=RAW, raw_bucket=RAW) == (
        "thumb/uploads/9f3c/cat.heic.webp"
    )


def test_the_same_key_in_three_buckets_gives_three_disjoint_sets() -> None:
    raw, other, third = keys_of(RAW, "a.jpg"), keys_of("other", "a.jpg"), keys_of("third", "a.jpg")
    assert "thumb/a.jpg.webp" in raw
    assert "thumb@other/a.jpg.webp" in other and "thumb@third/a.jpg.webp" in third
    assert len(raw | other | third) == 3 * len(RENDITIONS)


def test_a_raw_key_shaped_like_another_buckets_folder_cannot_collide() -> None:
    mimic = output_key("thumb", "thumb@other/a.jpg", "webp", bucket=RAW, raw_bucket=RAW)
    assert mimic == "thumb/thumb@other/a.jpg.webp"
    assert mimic not in keys_of("other", "a.jpg")
    assert keys_of(RAW, "thumb@other/a.jpg").isdisjoint(keys_of("other", "a.jpg"))


@given(rendition_names, st.one_of(st.just(RAW), bucket_names), keys, extensions)
def test_every_output_key_names_exactly_one_source(
    rendition: str, bucket: str, key: str, extension: str
) -> None:
    output = output_key(rendition, key, extension, bucket=bucket, raw_bucket=RAW)
    assert source_of(output) == (rendition, bucket, key, extension)
