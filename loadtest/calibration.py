"""The engine alone, timed in this process on an idle machine: the reference for how much
queueing and polling add to an image's latency."""

import statistics
from collections.abc import Sequence

from core.imaging import ImageRejected, Limits
from core.imaging.engine import render
from core.settings import Settings
from loadtest.workload import Source

ENGINE_STAGES = ("decode", "render", "encode")


def calibrate(sources: Sequence[Source], limit: int = 24) -> None:
    """Set ``engine_ms`` on up to ``limit`` sources, taken in turn from every (size, format)
    class; the others get their class's median."""
    specs = Settings.from_env().renditions
    limits = Limits(max_bytes=1 << 31)
    groups: dict[tuple[str, str], list[Source]] = {}
    for source in sources:
        groups.setdefault((source.size_class, source.fmt), []).append(source)
    rounds = max((len(g) for g in groups.values()), default=0)
    chosen = [g[i] for i in range(rounds) for g in groups.values() if i < len(g)][:limit]
    if chosen:  # warm up codecs and caches once
        try:
            render(chosen[0].read(), specs, limits)
        except ImageRejected:
            pass
    for source in chosen:
        try:
            result = render(source.read(), specs, limits)
        except ImageRejected:
            continue
        source.engine_ms = sum(float(result.timings_ms.get(s, 0.0)) for s in ENGINE_STAGES)
    for group in groups.values():
        known = [s.engine_ms for s in group if s.engine_ms is not None]
        for source in group:
            if source.engine_ms is None and known:
                source.engine_ms = statistics.median(known)
