"""The pure image engine: bytes in, bytes out. No AWS, no I/O beyond memory.

This package's own namespace holds only what needs no Pillow (limits, specs, reasons), so the
API function's settings cost no engine import; the engine is ``core.imaging.engine.render``
and ``core.imaging.decode.decode``.
"""

from core.imaging.errors import REJECT_REASONS, ImageRejected
from core.imaging.limits import Limits
from core.imaging.profile import ENGINE_OUTPUT_VERSION, rendering_profile
from core.imaging.specs import PRESETS, RenditionSpec, SpecError, parse_renditions

__all__ = [
    "ENGINE_OUTPUT_VERSION",
    "PRESETS",
    "REJECT_REASONS",
    "ImageRejected",
    "Limits",
    "RenditionSpec",
    "SpecError",
    "parse_renditions",
    "rendering_profile",
]
