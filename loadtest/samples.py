"""Regenerate the bundled samples in ``infra/samples/`` (``python -m loadtest.samples``).

Every sample is synthetic, so the repository carries no third-party photographs. Together
they exercise each decoder path the demo should show: EXIF rotation and GPS stripping, HEIC,
AVIF, WebP, alpha and animation.
"""

import io
import sys
from pathlib import Path

import pillow_heif
from PIL import Image

from loadtest.synthetic import photo_like

MAX_SAMPLE_BYTES = 300 * 1024
pillow_heif.register_heif_opener()


def samples() -> dict[str, bytes]:
    """File name -> encoded bytes for every bundled sample."""
    out: dict[str, bytes] = {}
    harbour = photo_like(1800, 1200, seed=11)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; the renditions must come out upright
    exif[0x010F] = "imgpipe sample camera"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    out["harbour-rotated.jpg"] = _save(
        harbour.rotate(90, expand=True), "JPEG", quality=80, exif=exif
    )
    out["meadow.heic"] = _save(photo_like(1600, 1200, seed=12), "HEIF", quality=50)
    out["dusk.avif"] = _save(photo_like(1600, 1000, seed=13), "AVIF", quality=50)
    out["street.webp"] = _save(photo_like(1400, 1400, seed=14), "WEBP", quality=80)
    badge = photo_like(540, 360, seed=15).convert("RGBA")
    mask = Image.new("L", badge.size, 0)
    mask.paste(255, (40, 40, 500, 320))
    badge.putalpha(mask)
    out["badge-alpha.png"] = _save(badge, "PNG", optimize=True)
    frames = [photo_like(320, 240, seed=20 + i).quantize(64) for i in range(6)]
    out["loop.gif"] = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)
    return out


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def main(folder: str = "infra/samples") -> int:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in samples().items():
        if len(data) > MAX_SAMPLE_BYTES:
            print(
                f"{name}: {len(data)} bytes is over the {MAX_SAMPLE_BYTES} budget", file=sys.stderr
            )
            return 1
        (target / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
