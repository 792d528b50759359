"""``.auto`` URLs and a ready ``srcset`` for renditions stored in AVIF, WebP and JPEG alike.

A rendition name whose three formats share one key stem (``{stem}.avif``, ``.webp``, ``.jpg``:
the ``responsive`` preset) gets one URL, ``{stem}.auto``, that the CDN's negotiate function
(``infra/cdn/negotiate.js``) turns into the best format the browser lists. The ``srcset`` takes
the whole-frame ones (the source's aspect ratio; a ``cover`` crop is another picture), one per
width, smallest first.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

AUTO_EXTENSION: Final = "auto"
NEGOTIATED: Final = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}  # format: extension


def _stem(key: str, extension: str) -> str | None:
    suffix = f".{extension}"
    return key.removesuffix(suffix) if key.endswith(suffix) else None


def auto_renditions(renditions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{name, key, width, height}]``, the ``.auto`` key of each name that has all three."""
    by_name: dict[str, dict[str, Mapping[str, Any]]] = {}
    for rendition in renditions:
        if rendition.get("format") in NEGOTIATED:  # hand-made items may lack fields
            by_name.setdefault(str(rendition["name"]), {})[str(rendition["format"])] = rendition
    found = []
    for name, formats in by_name.items():
        if set(NEGOTIATED) - set(formats):
            continue
        stems = {_stem(str(formats[f]["key"]), ext) for f, ext in NEGOTIATED.items()}
        jpeg = formats["jpeg"]
        if len(stems) == 1 and None not in stems:
            found.append({"name": name, "key": f"{stems.pop()}.{AUTO_EXTENSION}",
                          "width": int(jpeg["width"]), "height": int(jpeg["height"])})  # fmt: skip
    return found


def _whole_frame(width: int, height: int, source_w: int, source_h: int) -> bool:
    """Same aspect ratio as the source, to within the one pixel that rounding may cost."""
    return abs(width * source_h - height * source_w) <= max(source_w, source_h)


def srcset(auto: Sequence[Mapping[str, Any]], source_w: int, source_h: int) -> str:
    """``"{url} {width}w, ..."`` over the whole-frame ``.auto`` renditions (with ``url``)."""
    widths: dict[int, str] = {}
    for rendition in sorted(auto, key=lambda r: int(r["width"])):
        width, height = int(rendition["width"]), int(rendition["height"])
        if source_w and source_h and _whole_frame(width, height, source_w, source_h):
            widths.setdefault(width, str(rendition["url"]))
    return ", ".join(f"{url} {width}w" for width, url in widths.items())


def with_auto_urls(item: dict[str, Any], url_of: Callable[[str], str]) -> dict[str, Any]:
    """``item`` with ``auto`` (the ``.auto`` renditions, each with its CDN ``url``) and
    ``srcset`` when any name has all three formats; unchanged otherwise."""
    auto = auto_renditions(item.get("renditions", []))
    if not auto:
        return item
    for rendition in auto:
        rendition["url"] = url_of(rendition["key"])
    item["auto"] = auto
    item["srcset"] = srcset(auto, int(item.get("width") or 0), int(item.get("height") or 0))
    return item
