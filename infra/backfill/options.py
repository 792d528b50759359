"""A backfill run's options, the parsers of their command-line forms, and ``BackfillError``."""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from infra.backfill.filters import DEFAULT_SUFFIXES, Filters

LIST_PAGE_SIZE: Final = 1000
MAX_DEFAULT_PROCESSES: Final = 4  # each sender process costs about 50 MB
REPROCESS_CHOICES: Final = ("outdated", "all")
_SIZE_UNITS: Final = {
    "": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
    "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
}  # fmt: skip


class BackfillError(Exception):
    """A problem with the arguments, the source or the state file (exit code 2)."""


@dataclass
class Options:
    bucket: str
    queue_url: str
    filters: Filters = field(default_factory=Filters)
    head: bool = True  # HeadObject keys whose size/ETag/time the source does not give
    skip_processed: bool = False  # skip keys PROCESSED with the same ETag and ``profile``
    reprocess: str | None = None  # "outdated": only keys PROCESSED with another profile;
    # "all": every key, rendered again even when up to date
    profile: str = ""  # the rendering profile the process function runs with
    table: str | None = None
    concurrency: int = 8  # sender threads in all
    head_concurrency: int = 32
    processes: int = 1  # sender processes, this one included (the threads are split evenly)
    max_rate: float | None = None
    retries: int = 6
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    state_path: Path | None = None
    state_interval: float = 2.0
    failures_path: Path = Path("imgpipe-backfill-failures.jsonl")
    dry_run: bool = False
    sample_size: int = 10
    queue_units: int | None = None  # bounded queue length (default: 2 per sender)
    page_size: int = LIST_PAGE_SIZE  # ListObjectsV2 MaxKeys (one resumable chunk per page)

    @property
    def reads_table(self) -> bool:
        """Whether keys are looked up in the images table before they are sent."""
        return self.skip_processed or self.reprocess == "outdated"

    def share(self, total: int) -> int:
        """One process's share of ``total`` threads."""
        return max(1, -(-total // max(1, self.processes)))


def default_processes() -> int:
    """One sender process per CPU this process may use, at most ``MAX_DEFAULT_PROCESSES``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_DEFAULT_PROCESSES, cpus or 1))


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise BackfillError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise BackfillError(f"no bucket in {url!r}")
    return bucket, prefix


def parse_size(text: str) -> int:
    """Bytes from ``1234``, ``10KB``, ``5MiB`` or ``1.5G`` (binary multiples)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 1024, 10KB, 5MiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_time(text: str) -> datetime:
    """An ISO-8601 date or date-time; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 date or time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_suffixes(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Comma-separated, repeatable suffixes, lower-cased; ``*`` disables the filter."""
    if not values:
        return DEFAULT_SUFFIXES
    suffixes: list[str] = []
    for value in values:
        suffixes.extend(part.strip().lower() for part in value.split(",") if part.strip())
    if "*" in suffixes:
        return None
    return tuple(s if s.startswith(".") else f".{s}" for s in suffixes)
