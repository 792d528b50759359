"""Rendition specs, presets, ``IMGPIPE_RENDITIONS`` parsing and ``Settings.from_env``."""

import json
import os
from typing import Any

import pytest

from core.imaging import PRESETS, RenditionSpec, SpecError, parse_renditions
from core.imaging.specs import DEFAULT_QUALITY, MAX_DIMENSION
from core.settings import Settings, SettingsError, idle_cores


def as_json(*specs: dict[str, Any]) -> str:
    return json.dumps(list(specs))


GOOD = {"name": "a", "width": 100, "height": 80}


# --- presets ---------------------------------------------------------------------------------


def test_default_preset_matches_the_design() -> None:
    assert [(s.name, s.width, s.height, s.fit, s.format) for s in PRESETS["default"]] == [
        ("thumb", 200, 200, "cover", "webp"),
        ("mobile", 640, 640, "inside", "webp"),
        ("720p", 1280, 720, "inside", "webp"),
        ("1080p", 1920, 1080, "inside", "webp"),
    ]


@pytest.mark.parametrize("value", [None, "", "default", "  default\n"])
def test_default_when_unset_or_named(value: str | None) -> None:
    assert parse_renditions(value) == PRESETS["default"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_parses_and_is_valid(name: str) -> None:
    specs = parse_renditions(name)
    assert specs == PRESETS[name]
    assert len({(s.name, s.format) for s in specs}) == len(specs)
    # A preset survives a round trip through the JSON form.
    text = as_json(
        *(
            {"name": s.name, "width": s.width, "height": s.height, "fit": s.fit, "format": s.format}
            for s in specs
        )
    )
    assert parse_renditions(text) == specs


def test_format_presets_only_change_the_format() -> None:
    for preset, fmt in (("avif", "avif"), ("jpeg", "jpeg")):
        assert [s.format for s in PRESETS[preset]] == [fmt] * 4
        assert [(s.name, s.width, s.height, s.fit) for s in PRESETS[preset]] == [
            (s.name, s.width, s.height, s.fit) for s in PRESETS["default"]
        ]


def test_unknown_preset() -> None:
    with pytest.raises(SpecError, match="IMGPIPE_RENDITIONS: unknown preset 'huge'") as info:
        parse_renditions("huge")
    for name in PRESETS:
        assert name in str(info.value)


# --- JSON ------------------------------------------------------------------------------------


def test_json_defaults() -> None:
    (spec,) = parse_renditions(as_json(GOOD))
    assert spec == RenditionSpec("a", 100, 80)
    assert (spec.fit, spec.format, spec.quality, spec.watermark) == ("inside", "webp", None, None)
    assert spec.background == "#ffffff" and spec.background_rgb == (255, 255, 255)
    assert spec.effective_quality == DEFAULT_QUALITY["webp"]


def test_json_every_field() -> None:
    text = as_json(
        {
            "name": "hero_1-x",
            "width": 1,
            "height": MAX_DIMENSION,
            "fit": "cover",
            "format": "jpeg",
            "quality": 100,
            "watermark": "© me",
            "background": "#0A0b0C",
        },
        {**GOOD, "name": "b", "fit": "exact", "format": "source", "quality": 1},
    )
    first, second = parse_renditions(text)
    assert first == RenditionSpec(
        "hero_1-x", 1, MAX_DIMENSION, "cover", "jpeg", 100, "© me", "#0A0b0C"
    )
    assert first.background_rgb == (10, 11, 12) and first.effective_quality == 100
    assert (second.fit, second.format, second.effective_quality) == ("exact", "source", 1)


@pytest.mark.parametrize("fmt", ["webp", "avif", "jpeg", "png", "source"])
def test_each_format_has_a_default_quality(fmt: str) -> None:
    (spec,) = parse_renditions(as_json({**GOOD, "format": fmt}))
    assert 1 <= spec.effective_quality <= 100


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "has space"),
        ("name", "-leading-dash"),
        ("name", "x" * 64),
        ("name", "../escape"),
        ("name", 7),
        ("width", 0),
        ("width", -5),
        ("width", MAX_DIMENSION + 1),
        ("width", "100"),
        ("width", 100.5),
        ("width", True),
        ("height", None),
        ("fit", "fill"),
        ("fit", "Cover"),
        ("format", "gif"),
        ("format", "jpg"),
        ("quality", 0),
        ("quality", 101),
        ("quality", "80"),
        ("quality", True),
        ("quality", 80.0),
        ("watermark", ""),
        ("watermark", "x" * 201),
        ("watermark", 5),
        ("background", "#fff"),
        ("background", "white"),
        ("background", "#gggggg"),
        ("background", None),
    ],
)
def test_invalid_field_is_named(field: str, value: Any) -> None:
    text = as_json(GOOD, {**GOOD, "name": "second", field: value})
    with pytest.raises(SpecError) as info:
        parse_renditions(text)
    assert str(info.value).startswith(f"renditions[1].{field}:"), str(info.value)


@pytest.mark.parametrize("field", ["name", "width", "height"])
def test_missing_required_field_is_named(field: str) -> None:
    spec = {k: v for k, v in GOOD.items() if k != field}
    with pytest.raises(SpecError, match=rf"^renditions\[0\]\.{field}:"):
        parse_renditions(as_json(spec))


def test_unknown_field_is_named() -> None:
    with pytest.raises(SpecError, match=r"^renditions\[0\]\.colour: unknown field"):
        parse_renditions(as_json({**GOOD, "colour": "red"}))


def test_spec_must_be_an_object() -> None:
    with pytest.raises(SpecError, match=r"^renditions\[1\]: expected an object"):
        parse_renditions(json.dumps([GOOD, ["a", 1, 2]]))


def test_duplicate_names() -> None:
    with pytest.raises(SpecError, match="duplicate name.*a") as info:
        parse_renditions(as_json(GOOD, {**GOOD, "width": 5}, {**GOOD, "name": "b"}))
    assert "b" not in str(info.value).split("duplicate")[1]


@pytest.mark.parametrize("text", ["[", "[{]", '[{"name": "a",}]'])
def test_invalid_json(text: str) -> None:
    with pytest.raises(SpecError, match="IMGPIPE_RENDITIONS: invalid JSON"):
        parse_renditions(text)


def test_empty_list() -> None:
    with pytest.raises(SpecError, match="non-empty JSON list"):
        parse_renditions("[]")


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError)


# --- Settings.from_env -----------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.max_bytes == 50 * 1024 * 1024
    assert settings.max_pixels == 50_000_000
    assert settings.workers == (os.cpu_count() or 1)
    assert settings.renditions == PRESETS["default"]
    assert (settings.raw_bucket, settings.output_bucket, settings.table, settings.queue_url) == (
        "",
        "",
        "",
        "",
    )
    limits = settings.limits
    assert (limits.max_bytes, limits.max_pixels, limits.max_frames) == (
        50 * 1024 * 1024,
        50_000_000,
        1000,
    )


def test_settings_from_environment_values() -> None:
    env = {
        "IMGPIPE_RAW_BUCKET": "raw",
        "IMGPIPE_OUTPUT_BUCKET": "out",
        "IMGPIPE_TABLE": "images",
        "IMGPIPE_QUEUE_URL": "https://sqs.example/jobs",
        "IMGPIPE_RENDITIONS": "thumbs",
        "IMGPIPE_MAX_BYTES": " 1024 ",
        "IMGPIPE_MAX_PIXELS": "2000",
        "IMGPIPE_WORKERS": "3",
        "IMGPIPE_ENCODE_THREADS": "1",
    }
    settings = Settings.from_env(env)
    assert (settings.raw_bucket, settings.output_bucket, settings.table) == ("raw", "out", "images")
    assert settings.queue_url == "https://sqs.example/jobs"
    assert settings.renditions == PRESETS["thumbs"]
    assert (settings.max_bytes, settings.max_pixels, settings.workers) == (1024, 2000, 3)
    assert (settings.limits.max_bytes, settings.limits.max_pixels) == (1024, 2000)
    assert settings.encode_threads == 1
    cpus = os.cpu_count() or 1
    assert Settings.from_env({"IMGPIPE_WORKERS": "1"}).encode_threads == cpus
    assert Settings.from_env({"IMGPIPE_WORKERS": str(cpus)}).encode_threads == 1


@pytest.mark.parametrize(
    ("workers", "cpus", "threads"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (1, 4, 4), (2, 4, 3)]
)
def test_the_encode_pool_takes_the_cores_the_records_leave_idle(
    workers: int, cpus: int, threads: int
) -> None:
    assert idle_cores(workers, cpus) == threads


def test_settings_read_os_environ_by_default(engine_env: pytest.MonkeyPatch) -> None:
    engine_env.setenv("IMGPIPE_MAX_PIXELS", "1234")
    engine_env.setenv("IMGPIPE_RENDITIONS", as_json(GOOD))
    settings = Settings.from_env()
    assert settings.max_pixels == 1234
    assert settings.renditions == (RenditionSpec("a", 100, 80),)


@pytest.mark.parametrize(
    "name",
    ["IMGPIPE_MAX_BYTES", "IMGPIPE_MAX_PIXELS", "IMGPIPE_WORKERS", "IMGPIPE_ENCODE_THREADS"],
)
@pytest.mark.parametrize("value", ["abc", "1.5", "0", "-3", "10MB"])
def test_settings_bad_integers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}:"):
        Settings.from_env({name: value})


def test_settings_bad_renditions_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"renditions\[0\]\.fit"):
        Settings.from_env({"IMGPIPE_RENDITIONS": as_json({**GOOD, "fit": "stretch"})})
    with pytest.raises(SpecError, match="unknown preset"):
        Settings.from_env({"IMGPIPE_RENDITIONS": "nope"})


def test_settings_require_names_every_missing_variable() -> None:
    settings = Settings.from_env({"IMGPIPE_TABLE": "t"})
    with pytest.raises(SettingsError) as info:
        settings.require("raw_bucket", "output_bucket", "table")
    assert "IMGPIPE_RAW_BUCKET" in str(info.value) and "IMGPIPE_OUTPUT_BUCKET" in str(info.value)
    assert "IMGPIPE_TABLE" not in str(info.value)


def test_a_name_may_repeat_with_distinct_formats() -> None:
    specs = parse_renditions(
        '[{"name":"a","width":9,"height":9,"format":"avif"},'
        '{"name":"a","width":9,"height":9,"format":"jpeg"}]'
    )
    assert [(s.name, s.format) for s in specs] == [("a", "avif"), ("a", "jpeg")]
    for formats in (("webp", "webp"), ("jpeg", "source")):
        text = ",".join(f'{{"name":"a","width":9,"height":9,"format":"{f}"}}' for f in formats)
        with pytest.raises(SpecError, match="duplicate name"):
            parse_renditions(f"[{text}]")


def test_the_responsive_preset_has_every_size_in_three_formats() -> None:
    specs = parse_renditions("responsive")
    sizes = {(s.name, s.width, s.height, s.fit) for s in specs}
    assert sizes == {(s.name, s.width, s.height, s.fit) for s in parse_renditions("default")}
    for size in sizes:
        formats = sorted(s.format for s in specs if (s.name, s.width, s.height, s.fit) == size)
        assert formats == ["avif", "jpeg", "webp"]
