"""The statistics the load-test summary is made of: latency distributions (nearest-rank
percentiles), completions per second, and means over the seconds when the queue was busy."""

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infra.local.accounting import percentile
from loadtest.image_rows import ImageRow
from loadtest.sampling import Sample

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


@dataclass(frozen=True)
class Distribution:
    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None


def distribution(values: Iterable[float | None]) -> Distribution:
    """n, p50, p90, p99 (nearest rank, the shared ``percentile``), max and mean."""
    clean = [float(v) for v in values if v is not None]
    if not clean:
        return Distribution(0, None, None, None, None, None)
    p50, p90, p99 = (round(percentile(clean, fraction), 1) for _, fraction in PERCENTILES)
    return Distribution(
        len(clean), p50, p90, p99, round(max(clean), 1), round(statistics.fmean(clean), 1)
    )


def mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


@dataclass
class ThroughputBin:
    t: float  # the bin's start, seconds since the start of the run
    images: int = 0  # completions (PROCESSED or FAILED, by finished_at)
    mb: float = 0.0  # their source MB
    sent: int = 0  # images whose upload or enqueue call returned
    images_per_s: float = 0.0
    sent_per_s: float = 0.0
    mb_per_s: float = 0.0


def throughput_series(rows: Sequence[ImageRow], bin_s: float = 1.0) -> list[ThroughputBin]:
    done = [r for r in rows if r.finished_at is not None]
    if not done:
        return []
    last = max(
        [r.finished_at for r in done if r.finished_at is not None] + [r.sent_at for r in rows]
    )
    bins = [ThroughputBin(i * bin_s) for i in range(int(last // bin_s) + 1)]
    for row in done:
        assert row.finished_at is not None
        into = bins[max(0, int(row.finished_at // bin_s))]
        into.images += 1
        into.mb += row.source_bytes / 1e6
    for row in rows:
        bins[max(0, int(row.sent_at // bin_s))].sent += 1
    for entry in bins:
        entry.images_per_s = entry.images / bin_s
        entry.sent_per_s = entry.sent / bin_s
        entry.mb_per_s = round(entry.mb / bin_s, 3)
        entry.mb = round(entry.mb, 3)
    return bins


def busy_mask(series: Sequence[Sample]) -> list[bool]:
    """Sample intervals during which the queue (visible + in flight) was non-empty."""
    mask = []
    for index, sample in enumerate(series):
        here = (sample.depth or 0) > 0
        before = index == 0 or (series[index - 1].depth or 0) > 0
        mask.append(here and before)
    return mask


def mean_where(series: Sequence[Sample], name: str, mask: Sequence[bool]) -> float | None:
    """The mean of the sample field ``name`` over the samples ``mask`` keeps."""
    values = [
        value
        for sample, keep in zip(series, mask, strict=True)
        if keep and (value := getattr(sample, name)) is not None
    ]
    return round(statistics.fmean(values), 4) if values else None
