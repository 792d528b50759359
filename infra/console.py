"""Shared terminal output helpers (rich consoles and human-readable figures)."""

from rich.console import Console

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def saving(output_bytes: int, source_bytes: int) -> str:
    """How much smaller the output is than the source, as a percentage."""
    if source_bytes <= 0:
        return "-"
    return f"{100 * (1 - output_bytes / source_bytes):.0f}%"
