"""The error taxonomy of DESIGN.md: rejected (permanent), skipped, and transient (retried)."""

from typing import Final

from core.imaging.errors import REJECT_REASONS, ImageRejected

SKIP_REASONS: Final = ("source_missing", "stale", "duplicate")

# A rejected image is written as FAILED and its message is acknowledged.
Rejected = ImageRejected


class Skipped(Exception):
    """Nothing to do for this record (acknowledged, not recorded as a failure)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Transient(Exception):
    """A failure worth retrying: the message goes back to the queue (and to the DLQ after 5)."""


__all__ = ["REJECT_REASONS", "SKIP_REASONS", "Rejected", "Skipped", "Transient"]
