"""argparse types that refuse an out-of-range number with a one-line usage error, instead of
quietly running with some other value."""

import argparse
import math
from collections.abc import Callable
from typing import Any


def bounded(kind: type, low: float, high: float = math.inf) -> Callable[[str], Any]:
    """A ``type=`` for argparse: ``kind(text)``, refused unless ``low <= value <= high``."""
    span = f"at least {low:g}" if high == math.inf else f"in {low:g}-{high:g}"
    return _checked(kind, lambda value: low <= value <= high, span)


def positive(kind: type) -> Callable[[str], Any]:
    """A ``type=`` for argparse: ``kind(text)``, refused unless it is above zero."""
    return _checked(kind, lambda value: value > 0, "above 0")


def _checked(kind: type, accepts: Callable[[Any], bool], span: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not accepts(value):  # NaN is accepted by no comparison
            raise argparse.ArgumentTypeError(f"{text} is not {span}")
        return value

    return convert
