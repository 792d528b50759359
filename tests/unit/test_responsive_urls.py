"""``.auto`` URLs and the ``srcset`` the API returns for the responsive preset's renditions."""

from typing import Any

import pytest

from handlers.responsive import auto_renditions, with_auto_urls

SOURCE = "uploads/9f3c/cat photo.heic"
SIZES = {"thumb": (200, 200), "mobile": (640, 480), "720p": (960, 720), "1080p": (1440, 1080)}
EXTENSIONS = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}


def renditions(version: str = "", formats: tuple[str, ...] = ("avif", "webp", "jpeg")) -> list[Any]:
    """As the pipeline records them, with keys today's way or with a version (``.{etag8}``)."""
    return [
        {"name": name, "key": f"{name}/{SOURCE}{version}.{EXTENSIONS[fmt]}", "format": fmt,
         "width": w, "height": h, "bytes": 1000}
        for name, (w, h) in SIZES.items() for fmt in formats
    ]  # fmt: skip


def url_of(key: str) -> str:
    return f"https://d111.cloudfront.net/{key.replace(' ', '%20')}"


@pytest.mark.parametrize("version", ["", ".3f2a9c1b"])
def test_every_name_in_three_formats_gets_an_auto_url_and_the_srcset(version: str) -> None:
    item = {"width": 4032, "height": 3024, "renditions": renditions(version)}
    result = with_auto_urls(item, url_of)
    auto = {r["name"]: r for r in result["auto"]}
    assert set(auto) == set(SIZES)
    assert auto["720p"]["key"] == f"720p/{SOURCE}{version}.auto"
    assert auto["720p"]["url"] == url_of(f"720p/{SOURCE}{version}.auto")
    assert (auto["720p"]["width"], auto["720p"]["height"]) == (960, 720)
    # The square thumb is a crop, not the picture at another size: not in the srcset.
    assert result["srcset"] == ", ".join(
        f"{url_of(f'{name}/{SOURCE}{version}.auto')} {SIZES[name][0]}w"
        for name in ("mobile", "720p", "1080p")
    )


def test_names_missing_a_format_or_sharing_no_stem_get_none() -> None:
    assert auto_renditions(renditions(formats=("webp",))) == []
    assert auto_renditions(renditions(formats=("avif", "webp"))) == []
    mixed = renditions()
    mixed[0]["key"] = "thumb/elsewhere.avif"  # thumb's AVIF is not beside its WebP and JPEG
    assert {r["name"] for r in auto_renditions(mixed)} == {"mobile", "720p", "1080p"}
    item = {"renditions": renditions(formats=("webp",))}
    assert with_auto_urls(dict(item), url_of) == item  # nothing added


def test_a_small_source_lists_each_width_once() -> None:
    same = [{**r, "width": 300, "height": 200} for r in renditions() if r["name"] != "thumb"]
    result = with_auto_urls({"width": 300, "height": 200, "renditions": same}, url_of)
    assert result["srcset"] == f"{url_of(f'mobile/{SOURCE}.auto')} 300w"
