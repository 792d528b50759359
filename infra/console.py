"""Shared terminal output helpers (rich consoles and human-readable figures).

Markup is off on both consoles: what they print holds file names, S3 keys and error messages,
and a ``[/x]`` in any of them would be read as a closing tag (rich raises ``MarkupError``).
Colour comes from ``rich.text.Text`` styles instead (``error``, ``warning``, ``styled``).
"""

from rich.console import Console
from rich.text import Text

console = Console(highlight=False, markup=False)
error_console = Console(stderr=True, highlight=False, markup=False)


def styled(text: object, style: str) -> Text:
    """``text`` verbatim, in ``style``."""
    return Text(str(text), style=style)


def error(message: object) -> None:
    """``error: message`` on stderr, the message verbatim and unwrapped (easy to grep)."""
    error_console.print(Text.assemble(styled("error:", "red"), " ", str(message)), soft_wrap=True)


def warning(message: object, out: Console = error_console) -> None:
    """``warning: message``, the message verbatim and unwrapped."""
    out.print(Text.assemble(styled("warning:", "yellow"), " ", str(message)), soft_wrap=True)


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
