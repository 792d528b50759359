"""Thin Lambda entry points: each builds its adapters once per container and calls ``core``."""
