"""The decoder's limits, in a module of their own: settings import them without the engine."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 1000
