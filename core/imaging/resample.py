"""Lanczos-3 resampling of decoded 8-bit grey and RGB pixels on libvips' SIMD kernels.

Pillow's resamplers are scalar: on a 4 MP photo they took 185 of the engine's 341 ms of CPU.
libvips' ``resize`` runs the same Lanczos-3, with the same reducing gap of 2, on vector
kernels (x86-64 and arm64) in about a quarter of the time. Decoding stays with Pillow, within
the engine's limits: libvips only ever sees pixels that were decoded already, and its loaders
and savers are blocked, so no upload's bytes can reach a libvips parser.

The pixels cross between the two libraries without a copy, through the Arrow C data interface
(nanoarrow): Pillow lends its decoded frame to libvips, and each result is lent back to Pillow
for the encoders. Copying a 4 MP frame out of Pillow cost 13 ms, a tenth of the engine's CPU,
mostly in first touches of freshly mapped memory.
"""

from concurrent.futures import Executor
from typing import Any, Final

import nanoarrow
import pyvips  # untyped upstream
from PIL import Image

# Each record's pixels are resized once: an operation cache would only hold memory.
pyvips.cache_set_max(0)
# One thread per resize: the service's parallelism comes from records and the encode pool.
pyvips.concurrency_set(1)
for _family in ("VipsForeignLoad", "VipsForeignSave"):
    pyvips.operation_block_set(_family, True)
# Pillow keeps an image of more than 16 MB as several blocks of rows, which it cannot lend as
# one buffer: one block per image (the engine's pixel limit bounds its size) keeps every
# decoded frame lendable. An allocation that falls back to small blocks is copied instead.
BLOCK_SIZE: Final = 1 << 30  # as PILLOW_BLOCK_SIZE=1G
Image.core.set_block_size(BLOCK_SIZE)  # type: ignore[attr-defined]

# The pixels as Pillow lays them out, one byte a sample: grey in one band, and RGB in four
# (Pillow pads each pixel to 4 bytes). libvips resizes the padding band too, for 7 % more time
# than three bands and no copy; every reader of an RGB image ignores it.
BANDS: Final = {"L": 1, "RGB": 4}


class VipsPixels:
    """Pixels in one buffer that libvips and a Pillow image share, with the Pillow mode."""

    def __init__(self, image: Any, mode: str, pillow: Image.Image) -> None:
        self._image = image
        self.mode = mode
        self._pillow = pillow  # the same pixels (the same memory) as a Pillow image

    @property
    def width(self) -> int:
        return int(self._image.width)

    @property
    def height(self) -> int:
        return int(self._image.height)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @classmethod
    def from_pillow(cls, image: Image.Image) -> "VipsPixels":
        """``image``'s pixels (mode L or RGB) lent to libvips; a copy only when Pillow holds
        them in several blocks. ``image`` becomes read-only: any later change copies it."""
        try:
            # The high-level Array: its buffer holds the exported array, which holds Pillow's
            # memory (c_array(...).view()'s buffers hold neither, and Pillow frees its memory
            # with its core image, for example when a read-only image is saved).
            lent = nanoarrow.Array(nanoarrow.c_array(image))
            data = (lent if image.mode == "L" else lent.child(0)).buffer(1)
        except ValueError:  # "Image rows are not contiguous in memory"
            data = image.tobytes("raw", "L" if image.mode == "L" else "RGBX")
        bands = BANDS[image.mode]
        vips = pyvips.Image.new_from_memory(data, image.width, image.height, bands, "uchar")
        image.readonly = 1
        return cls(vips, image.mode, image)

    def resized(
        self,
        size: tuple[int, int],
        box: tuple[float, float, float, float],
        executor: Executor | None = None,
    ) -> "VipsPixels":
        """The ``box`` region (rounded to whole pixels) resized to exactly ``size``; with an
        ``executor``, the upper half of the rows is computed on it. libvips computes each
        output pixel from its position alone, so the bands join into the same pixels."""
        left, top = round(box[0]), round(box[1])
        width = max(1, min(self.width - left, round(box[2]) - left))
        height = max(1, min(self.height - top, round(box[3]) - top))
        region = self._image
        if (left, top, width, height) != (0, 0, self.width, self.height):
            region = region.extract_area(left, top, width, height)
        out_w, out_h = size
        resized = region.resize(out_w / width, vscale=out_h / height, kernel="lanczos3")
        if executor is None or out_h < 2:
            return _computed(resized, self.mode)
        mid = out_h // 2
        upper = executor.submit(_rows, resized, 0, mid)
        lower = _rows(resized, mid, out_h - mid)
        return _computed(upper.result().join(lower, "vertical"), self.mode)

    def to_pillow(self) -> Image.Image:
        """These pixels as a read-only Pillow image, for the encoders: the same memory."""
        return self._pillow


def _computed(image: Any, mode: str) -> VipsPixels:
    """A (lazy) libvips result computed once into one buffer, which libvips and Pillow share."""
    data = image.write_to_memory()
    width, height, bands = image.width, image.height, BANDS[mode]
    vips = pyvips.Image.new_from_memory(data, width, height, bands, "uchar")
    samples = nanoarrow.c_array_from_buffers(nanoarrow.uint8(), len(data), [None, data])
    if mode != "L":
        pixels = nanoarrow.fixed_size_list(nanoarrow.uint8(), bands)
        samples = nanoarrow.c_array_from_buffers(pixels, width * height, [None], children=[samples])
    return VipsPixels(vips, mode, Image.fromarrow(samples, mode, (width, height)))


def _rows(image: Any, top: int, rows: int) -> Any:
    """Rows ``top`` to ``top + rows`` of a (lazy) libvips image, computed into memory."""
    return image.crop(0, top, image.width, rows).copy_memory()
