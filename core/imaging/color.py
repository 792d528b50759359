"""Normalise decoded pixels to 8-bit sRGB (RGB or RGBA) and drop all metadata."""

import io
from functools import cache, lru_cache
from importlib.resources import files

from PIL import Image, ImageCms, ImageMath

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ICC_MODES = frozenset({"RGB", "RGBA"})
# CC0, from github.com/saucecontrol/Compact-ICC-Profiles: a perceptual CMYK-to-PCS mapping of
# the CGATS TR 001 (SWOP) characterisation data, made as the default for CMYK without a profile.
DEFAULT_CMYK_PROFILE = "CGATS001Compat-v2-micro.icc"


def to_srgb8(image: Image.Image) -> Image.Image:
    """Return an RGB or RGBA image in sRGB with empty ``info`` (so no EXIF, XMP or ICC leaks)."""
    icc = image.info.get("icc_profile")
    image = _to_eight_bit(image)
    if image.mode == "RGB" and "transparency" in image.info:  # a tRNS colour key
        image = image.convert("RGBA")  # before ICC: applyTransform drops ``info``
    if image.mode == "CMYK":  # never the naive formula: it crushes blacks and shifts blues
        cmyk = (_transform_for(icc, "CMYK") if icc else None) or _default_cmyk_transform()
        image = ImageCms.applyTransform(image, cmyk) or image
    elif icc and image.mode in _ICC_MODES:
        transform = _transform_for(icc, image.mode)
        if transform is not None:
            image = ImageCms.applyTransform(image, transform) or image
    elif icc and image.mode in ("L", "LA"):
        if "transparency" in image.info:  # a tRNS grey key: keep it as alpha
            image = image.convert("LA")
        image = _grey_to_srgb(image, icc)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in ("RGB", "RGBA"):
        has_alpha = image.mode in ("LA", "La", "PA", "RGBa") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    image.info = {}
    return image


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit greyscale to 8 bits; Pillow's own ``convert('L')`` clips it to white.

    A ``tRNS`` key becomes an alpha channel here, from the 16-bit samples: after scaling, 256
    different values share each 8-bit one, so the key could no longer pick out its pixels.
    """
    if image.mode not in _SIXTEEN_BIT_MODES:
        return image
    wide = image if image.mode == "I" else image.convert("I")
    grey = wide.point(lambda v: v * (255 / 65535) + 0.5).convert("L")
    key = image.info.get("transparency")
    if not isinstance(key, int):
        grey.info.pop("transparency", None)
        return grey
    alpha = ImageMath.lambda_eval(lambda a: (a["wide"] != key) * 255, wide=wide)
    assert isinstance(alpha, Image.Image)
    return Image.merge("LA", (grey, alpha.convert("L")))


def _grey_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Apply a greyscale profile (a gamma-1.0 grey, say, is far from sRGB's curve); the result
    is RGB, or RGBA with the alpha kept. Without a usable profile the image is unchanged."""
    transform = _transform_for(icc, "L")
    if transform is None:
        return image
    grey = image.getchannel("L") if image.mode == "LA" else image
    rgb = ImageCms.applyTransform(grey, transform)
    if rgb is None:
        return image
    if image.mode == "LA":
        rgb.putalpha(image.getchannel("A"))
    return rgb


@lru_cache(maxsize=32)
def _transform_for(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Build (once per distinct profile) the transform to sRGB; None for sRGB or broken profiles."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(source).lower() and mode != "CMYK":
            return None
        out_mode = "RGBA" if mode == "RGBA" else "RGB"
        return ImageCms.buildTransform(
            source,
            _SRGB,
            mode,
            out_mode,
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
        )
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None


@cache
def _default_cmyk_transform() -> ImageCms.ImageCmsTransform:
    """For CMYK with no embedded profile, or a broken or non-CMYK one (as libvips does)."""
    icc = files("core.imaging").joinpath("profiles", DEFAULT_CMYK_PROFILE).read_bytes()
    transform = _transform_for(icc, "CMYK")
    if transform is None:
        raise RuntimeError(f"the bundled {DEFAULT_CMYK_PROFILE} does not load")
    return transform


_SRGB = ImageCms.createProfile("sRGB")
