"""`imgpipe bench`: the engine against naive Pillow and the libvips peers, side by side.

Each (image, strategy) pair runs in a fresh worker process so that its peak RSS is its own.
Strategies are interleaved per image, so machine noise hits them alike.
"""

import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from core.imaging import PRESETS, Limits, RenditionSpec
from core.imaging.color import to_srgb8
from core.imaging.engine import render
from core.imaging.parallel import shared_encoder
from core.imaging.resize import geometry
from core.imaging.sniff import sniff_format
from loadtest.bench_peers import (
    SHARP_MODES,
    Measured,
    pyvips_available,
    pyvips_cascade,
    pyvips_per_rendition,
    run_sharp,
    sharp_available,
)

SPECS = PRESETS["default"]
LARGE_MP = 8.0


def _engine(data: bytes, specs: Sequence[RenditionSpec]) -> list[bytes]:
    return [r.data for r in render(data, specs, Limits(max_bytes=1 << 31)).renditions]


def _engine_parallel(data: bytes, specs: Sequence[RenditionSpec]) -> list[bytes]:
    """The engine as the pipeline runs it on 2 cores: encodes on a shared 2-thread executor."""
    limits = Limits(max_bytes=1 << 31)
    return [r.data for r in render(data, specs, limits, encoder=shared_encoder(2)).renditions]


def _naive(data: bytes, specs: Sequence[RenditionSpec]) -> list[bytes]:
    """The tutorial way: full decode, every rendition from the original, default encoder."""
    original = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    outputs = []
    for spec in specs:
        size = geometry(spec, original.width, original.height).size
        if spec.fit == "cover":
            image = ImageOps.fit(original, size, Image.Resampling.LANCZOS)
        else:
            image = original.resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=spec.effective_quality)
        outputs.append(buffer.getvalue())
    return outputs


STRATEGIES: dict[str, Callable[[bytes, Sequence[RenditionSpec]], list[bytes]]] = {
    "imgpipe": _engine,
    "imgpipe-2-threads": _engine_parallel,
    "naive": _naive,
    "pyvips-per-rendition": pyvips_per_rendition,
    "pyvips-cascade": pyvips_cascade,
}
# The strong peers, the ones the engine's goal is set against (the faster of the two).
CASCADES = ("pyvips-cascade", "sharp-cascade")


def available_strategies() -> list[str]:
    names = ["imgpipe", "imgpipe-2-threads", "naive"]
    if pyvips_available():
        names += ["pyvips-per-rendition", "pyvips-cascade"]
    if sharp_available():
        names += list(SHARP_MODES)
    return names


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(strategy: str, path: str, repeat: int, warmup: int = 0) -> dict[str, Any]:
    """Run one strategy on one file in this (fresh) process and measure it, after ``warmup``
    untimed runs."""
    measured = _measure(strategy, Path(path), repeat, warmup)
    return {
        "ms": measured.ms,
        "cpu_ms": measured.cpu_ms,
        "bytes": [len(o) for o in measured.outputs],
        "rss_mb": measured.rss_mb,
        "ssim": _ssim_against_reference(Path(path).read_bytes(), measured.outputs),
    }


def _measure(strategy: str, path: Path, repeat: int, warmup: int = 0) -> Measured:
    if strategy in SHARP_MODES:
        return run_sharp(strategy, path, SPECS, warmup + repeat).without_first(warmup)
    data = path.read_bytes()
    run = STRATEGIES[strategy]
    baseline_kb = _peak_rss_kb()
    times, cpu, outputs = [], [], []
    for _ in range(warmup + repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        outputs = run(data, SPECS)
        cpu.append((time.process_time() - cpu_started) * 1000)
        times.append((time.perf_counter() - started) * 1000)
    measured = Measured(times, cpu, (_peak_rss_kb() - baseline_kb) / 1024, outputs)
    return measured.without_first(warmup)


def _ssim_against_reference(data: bytes, outputs: list[bytes]) -> list[float] | None:
    """SSIM (luma) of each output against a full-quality reference, when scikit-image exists."""
    try:
        # deferred (see bench_peers.pyvips_per_rendition): 100 ms
        import numpy as np
        from skimage.metrics import structural_similarity
    except ImportError:
        return None
    ssim: Any = structural_similarity  # untyped upstream
    original = to_srgb8(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))).convert("RGB")
    scores = []
    for spec, output in zip(SPECS, outputs, strict=True):
        geo = geometry(spec, original.width, original.height)
        reference = original.resize(geo.size, Image.Resampling.LANCZOS, box=geo.region)
        decoded = Image.open(io.BytesIO(output)).convert("RGB")
        if decoded.size != reference.size:
            decoded = decoded.resize(reference.size, Image.Resampling.LANCZOS)
        a = np.asarray(reference.convert("L"), dtype=np.float64)
        b = np.asarray(decoded.convert("L"), dtype=np.float64)
        score = ssim(a, b, data_range=255, gaussian_weights=True)
        scores.append(float(score))
    return scores


@dataclass(frozen=True)
class Sample:
    file: str
    megapixels: float
    strategy: str
    median_ms: float
    bytes: int
    rss_mb: float
    ssim: float | None
    progressive_jpeg: bool = False
    cpu_ms: float | None = None


def corpus_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with path.open("rb") as handle:
                if sniff_format(handle.read(64)):
                    files.append(path)
    return files


def _header(path: Path) -> tuple[float, bool]:
    """Megapixels, and whether the file is a progressive JPEG."""
    with Image.open(path) as image:
        progressive = image.format == "JPEG" and bool(image.info.get("progressive"))
        return image.width * image.height / 1e6, progressive


def run_bench(
    files: Sequence[Path], strategies: Sequence[str], repeat: int, warmup: int = 0
) -> Iterator[Sample]:
    """Yield one sample per (file, strategy), strategies interleaved per file; each pair's
    process first runs ``warmup`` untimed times, as a warm Lambda would have."""
    for path in files:
        megapixels, progressive = _header(path)
        for strategy in strategies:
            runs = [str(repeat), str(warmup)]
            out = subprocess.run(
                [sys.executable, "-m", "loadtest.bench", strategy, str(path), *runs],
                check=True,
                capture_output=True,
                text=True,
                # One core per image for every strategy: the service gets its parallelism
                # from records, so libvips' own thread pool is pinned to one thread too.
                env={**os.environ, "IMGPIPE_WORKERS": "1", "VIPS_CONCURRENCY": "1"},
            )
            result = json.loads(out.stdout)
            ssim = statistics.fmean(result["ssim"]) if result["ssim"] else None
            yield Sample(
                path.name,
                round(megapixels, 2),
                strategy,
                round(statistics.median(result["ms"]), 1),
                sum(result["bytes"]),
                round(result["rss_mb"], 1),
                None if ssim is None else round(ssim, 4),
                progressive,
                round(statistics.median(result["cpu_ms"]), 1),
            )


def summarise(samples: Sequence[Sample], strategies: Sequence[str]) -> dict[str, Any]:
    """Per-strategy medians and the ratios the acceptance criteria name, for all and large."""
    large = [s for s in samples if s.megapixels >= LARGE_MP]
    groups = {
        "all": samples,
        f">={LARGE_MP:g}MP": large,
        # Split because libjpeg must hold every block's DCT coefficients (2 bytes a sample,
        # at any DCT scale) to decode a progressive file: that alone bounds its peak RSS.
        f">={LARGE_MP:g}MP baseline JPEG and other formats": [
            s for s in large if not s.progressive_jpeg
        ],
        f">={LARGE_MP:g}MP progressive JPEG": [s for s in large if s.progressive_jpeg],
    }
    summary: dict[str, Any] = {}
    for group, members in groups.items():
        if not members:
            continue
        per: dict[str, Any] = {}
        for strategy in strategies:
            mine = [s for s in members if s.strategy == strategy]
            ssims = [s.ssim for s in mine if s.ssim is not None]
            median_ms = statistics.median(s.median_ms for s in mine)
            cpus = [s.cpu_ms for s in mine if s.cpu_ms is not None]
            per[strategy] = {
                "images": len(mine),
                "median_ms": round(median_ms, 1),
                "median_cpu_ms": round(statistics.median(cpus), 1) if cpus else None,
                "images_per_s": round(1000 * len(mine) / sum(s.median_ms for s in mine), 2),
                "median_rss_mb": round(statistics.median(s.rss_mb for s in mine), 1),
                "max_rss_mb": round(max(s.rss_mb for s in mine), 1),
                "output_bytes": sum(s.bytes for s in mine),
                "mean_ssim": round(statistics.fmean(ssims), 4) if ssims else None,
            }
        summary[group] = {"strategies": per, "ratios": _ratios(members, per)}
    return summary


def _ratios(members: Sequence[Sample], per: dict[str, Any]) -> dict[str, float]:
    """Speed-up is the median of per-image time ratios (paired, so noise cancels); ``cpu_vs``
    is imgpipe's CPU time over the peer's, also the median of per-image ratios."""
    by_file: dict[str, dict[str, Sample]] = {}
    for s in members:
        by_file.setdefault(s.file, {})[s.strategy] = s
    ratios: dict[str, float] = {}
    engine = per["imgpipe"]
    for other in (name for name in per if name != "imgpipe"):
        paired = [f[other].median_ms / f["imgpipe"].median_ms for f in by_file.values()]
        rss = [f["imgpipe"].rss_mb / max(f[other].rss_mb, 0.1) for f in by_file.values()]
        ratios[f"speedup_vs_{other}"] = round(statistics.median(paired), 2)
        cpu = _cpu_ratios(by_file.values(), [other])
        if cpu:
            ratios[f"cpu_vs_{other}"] = round(statistics.median(cpu), 3)
        ratios[f"bytes_vs_{other}"] = round(engine["output_bytes"] / per[other]["output_bytes"], 3)
        ratios[f"rss_vs_{other}"] = round(statistics.median(rss), 2)
        if engine["mean_ssim"] is not None and per[other]["mean_ssim"] is not None:
            ratios[f"ssim_minus_{other}"] = round(engine["mean_ssim"] - per[other]["mean_ssim"], 4)
    cascades = [name for name in CASCADES if name in per]
    faster = _cpu_ratios(by_file.values(), cascades) if cascades else []
    if faster:
        ratios["cpu_vs_faster_cascade"] = round(statistics.median(faster), 3)
    return ratios


def _cpu_ratios(files: Iterable[dict[str, Sample]], peers: Sequence[str]) -> list[float]:
    """Per image: imgpipe's CPU ms over the least CPU ms among ``peers`` on that image."""
    ratios = []
    for f in files:
        mine = f["imgpipe"].cpu_ms
        theirs = [f[p].cpu_ms for p in peers if p in f and f[p].cpu_ms]
        if mine is not None and theirs:
            ratios.append(mine / min(c for c in theirs if c is not None))
    return ratios


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
