"""The output folder of a command: created up front, or a one-line reason why not."""

from pathlib import Path


def make_folder(out: Path) -> str | None:
    """Create ``out``; why it cannot be, or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"--out {out}: exists and is not a folder"
    except OSError as exc:
        return f"--out {out}: {exc.strerror or exc}"
    return None
