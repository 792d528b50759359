"""Photo-like synthetic images: smooth colour fields, soft shapes and grain.

They compress like photographs (unlike flat test cards), so sizes and timings are realistic
enough for tests, samples and load tests. No third-party pixels are involved.
"""

import io
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of ``width`` x ``height`` that is deterministic for ``seed``."""
    rng = random.Random(seed)
    grid = Image.new("RGB", (6, 4))
    grid.putdata([_colour(rng) for _ in range(24)])
    image = grid.resize((width, height), Image.Resampling.BICUBIC)
    shapes = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height), 0)
    draw, mask_draw = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(1, min(width, height) // 20), max(2, min(width, height) // 4))
        box = (x - r, y - r, x + r, y + r)
        draw.ellipse(box, fill=_colour(rng))
        mask_draw.ellipse(box, fill=rng.randint(90, 220))
    blur = max(1, min(width, height) // 200)
    image.paste(shapes.filter(ImageFilter.GaussianBlur(blur)), mask=mask)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        length = rng.randint(1, max(2, width // 6))
        draw = ImageDraw.Draw(image)
        draw.line((x, y, x + length, y + rng.randint(-length, length)), fill=_colour(rng), width=2)
    grain = Image.effect_noise((width, height), 18).convert("RGB")
    return ImageChops.add(
        ImageChops.subtract(image, Image.new("RGB", image.size, (9,) * 3)),
        grain.point(lambda v: max(0, v - 119) // 14),
    )


def photo_like_bytes(
    width: int, height: int, seed: int = 0, fmt: str = "JPEG", **options: object
) -> bytes:
    """``photo_like`` encoded as ``fmt`` (JPEG at quality 90 unless ``options`` say otherwise)."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        options.setdefault("quality", 90)
    photo_like(width, height, seed).save(buffer, fmt, **options)
    return buffer.getvalue()


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)
