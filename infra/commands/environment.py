"""The one way a command changes this process's environment: for a block, then restored."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import boto3

from infra.worker.environment import apply_env


@contextmanager
def applied_env(env: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) the variables of ``env`` for the block, then restore them. boto3's
    default session is dropped on both sides: it keeps the credentials it found first."""
    saved = {name: os.environ.get(name) for name in env}
    apply_env(env)
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        apply_env(saved)
        boto3.DEFAULT_SESSION = None
