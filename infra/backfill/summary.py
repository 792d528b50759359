"""What a run reports: live figures for a progress display, and its summary."""

from dataclasses import dataclass, field
from typing import Any

from infra.backfill.work import Counts, Position


@dataclass
class Snapshot:
    """Live figures for a progress display."""

    counts: Counts
    elapsed_s: float
    rate: float  # messages sent per second, recent
    bytes_read: int
    bytes_total: int | None
    eta_s: float | None
    stopping: bool


@dataclass
class Summary:
    source: dict[str, Any]
    bucket: str
    queue_url: str
    dry_run: bool
    counts: Counts  # cumulative over resumed runs, as of the committed position
    this_run: Counts
    elapsed_s: float
    rate_per_s: float
    complete: bool
    interrupted: bool
    resumed: bool
    position: Position | None
    state_file: str | None
    failures_file: str | None
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if not self.dry_run:
            data.pop("sample")
        return data
