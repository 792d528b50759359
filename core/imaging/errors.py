"""The engine's one error type: a permanent rejection of an input, with a reason code."""

from typing import ClassVar, Final

# The reasons the engine can find in the bytes themselves; ``core.errors`` adds the pipeline's.
REJECT_REASONS: Final = (
    "empty",
    "too_large",
    "unsupported_format",
    "corrupt",
    "too_many_pixels",
    "too_many_frames",
)


class ImageRejected(Exception):
    """The input can never be processed; retrying it would give the same answer."""

    reasons: ClassVar[tuple[str, ...]] = REJECT_REASONS

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in self.reasons:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
