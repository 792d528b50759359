"""The rendering profile: a short fingerprint of what decides an image's output bytes.

Two renders of the same source with the same profile give the same renditions, so the
profile tells which images were rendered with an older preset or engine (``imgpipe backfill
--reprocess outdated``), and it is part of every output key, so that an immutable CDN cache
never serves bytes rendered under another profile.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Final

from core.imaging.specs import RenditionSpec

# Bump this whenever a change to the engine alters its output for the same input and specs
# (resampling, colour handling, encoder settings, watermark drawing, a library upgrade that
# changes bytes): every image then counts as outdated, and `--reprocess outdated` renders them
# again under new output keys. Changes that never alter output (speed, error reasons) keep it.
ENGINE_OUTPUT_VERSION: Final = 1
PROFILE_LENGTH: Final = 8  # hexadecimal characters


def rendering_profile(specs: Sequence[RenditionSpec]) -> str:
    """The fingerprint of ``specs`` (in order, every field) and ``ENGINE_OUTPUT_VERSION``."""
    document = {"engine": ENGINE_OUTPUT_VERSION, "renditions": [asdict(s) for s in specs]}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:PROFILE_LENGTH]
