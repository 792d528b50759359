"""What a load test sends: a pool of source images and the stream of keys drawn from it.

The pool holds photo-like synthetic images (generated once and cached) or a corpus folder's
files; each is sent many times, under a unique key per send.
"""

import math
import os
import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, UnidentifiedImageError

from loadtest.synthetic import photo_like_bytes

FORMATS: dict[str, tuple[str, str]] = {  # name -> (Pillow format, extension)
    "jpeg": ("JPEG", "jpg"),
    "png": ("PNG", "png"),
    "heic": ("HEIF", "heic"),
    "webp": ("WEBP", "webp"),
}
ALIASES = {"jpg": "jpeg", "heif": "heic"}
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".heic",
    ".heif",
    ".webp",
    ".gif",
    ".tif",
    ".tiff",
    ".avif",
    ".bmp",
}


@dataclass(frozen=True)
class SizeClass:
    label: str
    megapixels: float
    weight: float

    @property
    def dimensions(self) -> tuple[int, int]:
        """4:3 landscape with about ``megapixels`` million pixels."""
        width = max(8, round(math.sqrt(self.megapixels * 1e6 * 4 / 3)))
        return width, max(6, round(width * 3 / 4))


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """``"a:40,b:60"`` -> [("a", 40.0), ("b", 60.0)]; a missing weight is 1."""
    pairs: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        value = float(weight) if weight else 1.0
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"bad weight in {part!r}")
        pairs.append((name.strip(), value))
    if not pairs or sum(w for _, w in pairs) <= 0:
        raise ValueError(f"no positive weights in {text!r}")
    return pairs


def parse_sizes(text: str) -> list[SizeClass]:
    """``"2MP:40,12MP:50,0.3MP:10"`` (fractional megapixels are fine)."""
    classes = []
    for name, weight in parse_weighted(text):
        match = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)\s*(?:MP)?", name, re.IGNORECASE)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"bad size {name!r}: expected megapixels such as 12MP or 0.3MP")
        classes.append(SizeClass(f"{float(match.group(1)):g}MP", float(match.group(1)), weight))
    return classes


def parse_formats(text: str) -> list[tuple[str, float]]:
    formats = []
    for name, weight in parse_weighted(text):
        key = ALIASES.get(name.lower(), name.lower())
        if key not in FORMATS:
            raise ValueError(f"unknown format {name!r}: choose from {', '.join(FORMATS)}")
        formats.append((key, weight))
    return formats


@dataclass
class Source:
    """One distinct source image of the pool (sent many times under different keys)."""

    path: Path
    size_class: str
    fmt: str
    width: int
    height: int
    nbytes: int
    engine_ms: float | None = None  # isolated (single image, idle stack) engine time

    def read(self) -> bytes:
        return self.path.read_bytes()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgpipe" / "loadtest"


@dataclass(frozen=True)
class _Planned:
    path: Path
    size_class: str
    fmt: str
    width: int
    height: int
    seed: int

    def generate(self) -> None:
        """Write the image (through a temporary name, so a crash never leaves half a file)."""
        pil_format = FORMATS[self.fmt][0]
        if pil_format == "HEIF":
            pillow_heif.register_heif_opener()
        data = photo_like_bytes(self.width, self.height, self.seed, pil_format)
        partial = self.path.with_suffix(self.path.suffix + f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(self.path)


def synthetic_pool(
    sizes: Sequence[SizeClass],
    formats: Sequence[tuple[str, float]],
    per_class: int,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> list[Source]:
    """``per_class`` distinct photo-like images per (size, format), generated in parallel once
    and cached under ``cache_dir`` (12 MP takes a second or two each)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for size in sizes:
        width, height = size.dimensions
        for fmt, _ in formats:
            for seed in range(1000, 1000 + per_class):
                path = cache_dir / f"{size.label}-{width}x{height}-{seed}.{FORMATS[fmt][1]}"
                plan.append(_Planned(path, size.label, fmt, width, height, seed))
    missing = [p for p in plan if not p.path.exists()]
    done = len(plan) - len(missing)
    if progress:
        progress(done, len(plan))
    if missing:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for future in [pool.submit(p.generate) for p in missing]:
                future.result()
                done += 1
                if progress:
                    progress(done, len(plan))
    return [
        Source(p.path, p.size_class, p.fmt, p.width, p.height, p.path.stat().st_size) for p in plan
    ]


def corpus_pool(directory: Path) -> list[Source]:
    """Every image file under ``directory`` (the size class is the megapixel count, rounded)."""
    sources = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            with Image.open(path) as image:
                width, height = image.size
                fmt = (image.format or path.suffix[1:]).lower()
        except (UnidentifiedImageError, OSError):
            width = height = 0  # still sent: the pipeline must reject it cleanly
            fmt = path.suffix[1:].lower()
        megapixels = width * height / 1e6
        label = f"{megapixels:.0f}MP" if megapixels >= 1 else f"{megapixels:.1f}MP"
        sources.append(
            Source(path, label, ALIASES.get(fmt, fmt), width, height, path.stat().st_size)
        )
    return sources


@dataclass(frozen=True)
class WorkItem:
    seq: int
    key: str
    source: Source
    warmup: bool


class Workload:
    """A deterministic stream of work items: size class and format drawn by weight (synthetic),
    or the corpus files in turn."""

    def __init__(
        self,
        pool: Sequence[Source],
        run_id: str,
        sizes: Sequence[SizeClass] | None = None,
        formats: Sequence[tuple[str, float]] | None = None,
        warmup: int = 0,
        seed: int = 0,
    ) -> None:
        if not pool:
            raise ValueError("the workload has no source images")
        self.pool = list(pool)
        self.run_id = run_id
        self.sizes = list(sizes or [])
        self.formats = list(formats or [])
        self.warmup = warmup
        self.rng = random.Random(seed)
        self.seq = 0

    def _choose(self) -> Source:
        if not self.sizes:
            return self.pool[self.seq % len(self.pool)]
        size = self.rng.choices(self.sizes, weights=[s.weight for s in self.sizes])[0]
        fmt = self.rng.choices([f for f, _ in self.formats], [w for _, w in self.formats])[0]
        matching = [s for s in self.pool if s.size_class == size.label and s.fmt == fmt]
        return self.rng.choice(matching)

    def next(self) -> WorkItem:
        source = self._choose()
        seq = self.seq
        self.seq += 1
        name = f"{seq:06d}-{source.path.name}"
        return WorkItem(seq, f"loadtest/{self.run_id}/{name}", source, seq < self.warmup)
