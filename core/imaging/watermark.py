"""An optional text watermark, drawn with Pillow's bundled scalable font."""

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

_MIN_FONT_PX = 8


def apply_watermark(image: Image.Image, text: str) -> Image.Image:
    """Return a copy of ``image`` with ``text`` in its bottom-right corner, scaled to its size."""
    size = max(_MIN_FONT_PX, round(min(image.width, image.height * 2) * 0.045))
    font = _font(size)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    margin = max(2, size // 2)
    stroke = max(1, size // 12)
    draw.text(
        (image.width - margin, image.height - margin),
        text,
        font=font,
        anchor="rs",
        fill=(255, 255, 255, 170),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 110),
    )
    marked = Image.alpha_composite(image.convert("RGBA"), overlay)
    return marked if image.mode == "RGBA" else marked.convert(image.mode)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)
