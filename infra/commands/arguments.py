"""argparse types that refuse an out-of-range number with a one-line usage error, instead of
quietly running with some other value."""

import argparse
import math
from collections.abc import Callable
from typing import Any


def bounded(kind: type, low: float, high: float = math.inf) -> Callable[[str], Any]:
    """A ``type=`` for argparse: ``kind(text)``, refused unless ``low <= value <= high``."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            span = f"at least {low:g}" if high == math.inf else f"in {low:g}-{high:g}"
            raise argparse.ArgumentTypeError(f"{text} is not {span}")
        return value

    convert.__name__ = kind.__name__
    return convert


def positive(kind: type) -> Callable[[str], Any]:
    """A ``type=`` for argparse: ``kind(text)``, refused unless it is above zero."""
    at_least = bounded(kind, 0)

    def convert(text: str) -> Any:
        value = at_least(text)
        if value == 0:
            raise argparse.ArgumentTypeError(f"{text} is not above 0")
        return value

    convert.__name__ = kind.__name__
    return convert
