"""The pure image engine: bytes in, bytes out. No AWS, no I/O beyond memory."""

from core.imaging.decode import DecodedImage, Limits, decode
from core.imaging.engine import EncodedRendition, RenderResult, render
from core.imaging.errors import REJECT_REASONS, ImageRejected
from core.imaging.profile import ENGINE_OUTPUT_VERSION, rendering_profile
from core.imaging.specs import PRESETS, RenditionSpec, SpecError, parse_renditions

__all__ = [
    "ENGINE_OUTPUT_VERSION",
    "PRESETS",
    "REJECT_REASONS",
    "DecodedImage",
    "EncodedRendition",
    "ImageRejected",
    "Limits",
    "RenderResult",
    "RenditionSpec",
    "SpecError",
    "decode",
    "parse_renditions",
    "render",
    "rendering_profile",
]
