"""The error taxonomy of DESIGN.md: rejected (permanent), skipped, and transient (retried)."""

from typing import Final

from core.imaging.errors import REJECT_REASONS as ENGINE_REJECT_REASONS
from core.imaging.errors import ImageRejected

# Every reason an image is recorded FAILED with: the engine's, and the one only storage finds.
REJECT_REASONS: Final = (*ENGINE_REJECT_REASONS, "access_denied")
SKIP_REASONS: Final = ("source_missing", "stale", "duplicate")


class Rejected(ImageRejected):
    """A permanent failure found outside the engine (the event's size, a source this function
    may not read): written as FAILED, message acknowledged. The engine raises the base class,
    so ``except ImageRejected`` catches both."""

    reasons = REJECT_REASONS


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


class AccessDenied(Transient):
    """IAM refused a write, or a read of the pipeline's own table. Still transient for the
    queue, so a misconfigured role alarms through the DLQ instead of failing every image; the
    HTTP API answers it with 403."""


__all__ = [
    "REJECT_REASONS",
    "SKIP_REASONS",
    "AccessDenied",
    "Rejected",
    "Skipped",
    "Transient",
]
