"""Ctrl-C and SIGTERM as a stop request that a command's main loop checks."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl-C) or SIGTERM sets. Both are handled explicitly: a process
    manager stops with SIGTERM, and a shell starts background jobs with SIGINT ignored, which
    Python would otherwise keep."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
