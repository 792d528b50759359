"""Compare two load-test runs figure by figure: the ratio B/A, and the regressions.

A regression is a latency, time, cost or memory figure up by more than the threshold (10 %),
a throughput figure down by more than it, or more images lost (failed, DLQ, unaccounted).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THRESHOLD = 0.10
LOWER_IS_BETTER = "lower"
HIGHER_IS_BETTER = "higher"
INFO = "info"
COUNT = "count"  # lower is better, compared absolutely (0 -> 1 is a regression)


@dataclass(frozen=True)
class Figure:
    name: str
    a: float | None
    b: float | None
    direction: str

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return self.b / self.a

    def regression(self, threshold: float = THRESHOLD) -> bool:
        if self.a is None or self.b is None:
            return False
        if self.direction == COUNT:
            return self.b > self.a
        ratio = self.ratio
        if ratio is None:
            return False
        if self.direction == LOWER_IS_BETTER:
            return ratio > 1 + threshold
        if self.direction == HIGHER_IS_BETTER:
            return ratio < 1 - threshold
        return False

    def improvement(self, threshold: float = THRESHOLD) -> bool:
        ratio = self.ratio
        if ratio is None or self.direction in (INFO, COUNT):
            return False
        if self.direction == LOWER_IS_BETTER:
            return ratio < 1 - threshold
        return ratio > 1 + threshold


def load_summary(path: Path) -> dict[str, Any]:
    """A run folder or its results.json."""
    file = path / "results.json" if path.is_dir() else path
    data = json.loads(file.read_text("utf-8"))
    summary = data.get("summary", data)
    if not isinstance(summary, dict) or "latency_ms" not in summary:
        raise ValueError(f"{file} is not a load-test results.json")
    return summary


def _get(summary: dict[str, Any], *path: str) -> float | None:
    value: Any = summary
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def figures(a: dict[str, Any], b: dict[str, Any]) -> list[Figure]:
    specs: list[tuple[str, tuple[str, ...], str]] = []
    for series in ("e2e", "queue_wait", "processing", "engine"):
        for stat in ("p50", "p90", "p99", "max"):
            specs.append((f"{series} {stat} ms", ("latency_ms", series, stat), LOWER_IS_BETTER))
    specs += [
        ("throughput images/s", ("throughput", "images_per_s"), HIGHER_IS_BETTER),
        ("throughput source MB/s", ("throughput", "source_mb_per_s"), HIGHER_IS_BETTER),
        ("peak 5 s images/s", ("throughput", "peak_5s_images_per_s"), HIGHER_IS_BETTER),
    ]
    stages = sorted(set(a.get("stages_ms", {})) | set(b.get("stages_ms", {})))
    specs += [(f"stage {s} mean ms", ("stages_ms", s), LOWER_IS_BETTER) for s in stages]
    specs += [
        ("cost per million USD", ("cost", "per_million"), LOWER_IS_BETTER),
        ("worker peak RSS MB", ("resources", "worker_peak_rss_mb"), LOWER_IS_BETTER),
        ("worker CPU while busy", ("resources", "workers_util_busy"), INFO),
        ("moto CPU while busy", ("resources", "emulator_util_busy"), INFO),
        ("other processes CPU while busy", ("resources", "other_util_busy"), INFO),
        ("queue depth peak", ("resources", "queue_depth_peak"), INFO),
        ("failed", ("accounting", "failed"), COUNT),
        ("DLQ", ("accounting", "dlq"), COUNT),
        ("unaccounted", ("accounting", "unaccounted"), COUNT),
    ]
    result = []
    for name, path, direction in specs:
        fa, fb = _get(a, *path), _get(b, *path)
        if fa is None and fb is None:
            continue
        result.append(Figure(name, fa, fb, direction))
    return result


NOISY = 0.10  # other processes' share of the CPU that makes a comparison unreliable


def warnings(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    notes = []
    for label, summary in (("A", a), ("B", b)):
        other = _get(summary, "resources", "other_util_busy")
        if other is not None and other > NOISY:
            notes.append(
                f"run {label} shared the machine: other processes used {other:.0%} of the CPU, "
                "so its timings are not comparable"
            )
    return notes


def compare(run_a: Path, run_b: Path, threshold: float = THRESHOLD) -> dict[str, Any]:
    summary_a, summary_b = load_summary(run_a), load_summary(run_b)
    found = figures(summary_a, summary_b)
    rows = [
        {
            "figure": f.name,
            "a": f.a,
            "b": f.b,
            "ratio": None if f.ratio is None else round(f.ratio, 3),
            "better": f.direction,
            "regression": f.regression(threshold),
            "improvement": f.improvement(threshold),
        }
        for f in found
    ]
    return {
        "a": str(run_a),
        "b": str(run_b),
        "threshold": threshold,
        "figures": rows,
        "regressions": [r["figure"] for r in rows if r["regression"]],
        "warnings": warnings(summary_a, summary_b),
    }
