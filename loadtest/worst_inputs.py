"""The worst accepted inputs at the default limits (about 50 MP each), built in code, for
measuring what one record costs in memory: ``python -m loadtest.worst_inputs DIR`` then
``imgpipe bench DIR``. Smooth gradients keep every file under 2 MB, far inside the byte limit,
so the pixel count alone decides the cost."""

import io
import struct
import sys
from pathlib import Path

import pillow_heif
from PIL import Image, ImageCms

SIDE = 7071  # 49.99 MP: just inside IMGPIPE_MAX_PIXELS' default


def _grey(side: int) -> Image.Image:
    return Image.linear_gradient("L").resize((side, side))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def grey16_png(side: int = SIDE) -> bytes:
    """16-bit greyscale PNG: the most memory per pixel of the accepted inputs."""
    wide = _grey(side).convert("I").point(lambda v: v * 257).convert("I;16")
    return _encode(wide, "PNG", compress_level=1)


def wide_gamut_profile() -> bytes:
    """sRGB's profile with its red primary moved: a matrix-shaper RGB profile (as Display P3
    is) that the engine must convert rather than recognise as sRGB."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    for index in range(count):
        signature, offset, _ = struct.unpack(">4sII", data[132 + 12 * index : 144 + 12 * index])
        if signature == b"rXYZ":
            x, y, z = struct.unpack(">iii", data[offset + 8 : offset + 20])
            data[offset + 8 : offset + 20] = struct.pack(">iii", int(x * 1.08), int(y * 0.95), z)
    return bytes(data)


def rgba_icc_png(side: int = SIDE) -> bytes:
    grey = _grey(side)
    rgba = Image.merge("RGBA", [grey, grey.rotate(90), grey.rotate(180), grey.rotate(270)])
    return _encode(rgba, "PNG", icc_profile=wide_gamut_profile(), compress_level=1)


def _rgb(size: tuple[int, int]) -> Image.Image:
    grey = _grey(max(size))
    return Image.merge("RGB", [grey, grey.rotate(90), grey.rotate(180)]).resize(size)


def heic_48mp() -> bytes:
    pillow_heif.register_heif_opener()
    return _encode(_rgb((8000, 6000)), "HEIF", quality=80)


def jpeg(side: int = SIDE) -> bytes:
    return _encode(_rgb((side, side)), "JPEG", quality=90)


INPUTS = {
    "grey16.png": grey16_png,
    "rgba-icc.png": rgba_icc_png,
    "photo48.heic": heic_48mp,
    "photo50.jpg": jpeg,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m loadtest.worst_inputs DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, build in INPUTS.items():
        (out / name).write_bytes(build())
        print(f"{out / name}: {(out / name).stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
