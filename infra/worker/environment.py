"""How a spawned process takes on the environment its parent gave it (a function's runtime)."""

import os
from collections.abc import Mapping


def apply_env(env: Mapping[str, str | None], defaults: Mapping[str, str] | None = None) -> None:
    """Set (or, for ``None``, remove) the variables of ``env``; then set those of ``defaults``
    that are still unset or empty (a spawned process inherits its parent's environment)."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for name, value in (defaults or {}).items():
        if not os.environ.get(name):
            os.environ[name] = value
