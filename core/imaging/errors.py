"""The engine's one error type: a permanent rejection of an input, with a reason code."""

from typing import Final

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

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
