"""Count animation frames from container headers, without decoding any pixels."""

from PIL import Image

from core.imaging.sniff import GIF


def count_frames(image: Image.Image, fmt: str, data: bytes, stop_after: int) -> int:
    """Frame count, or any number above ``stop_after`` once that many have been seen.

    Pillow's GIF ``n_frames`` decodes every frame to count them, which a hostile file can make
    expensive, so GIF blocks are walked here instead. The other formats read the count from a
    header (APNG ``acTL``, the WebP demuxer, the HEIF/AVIF container).
    """
    if fmt == GIF:
        return _count_gif_frames(data, stop_after)
    return int(getattr(image, "n_frames", 1))


def _count_gif_frames(data: bytes, stop_after: int) -> int:
    pos = 13  # header (6) + logical screen descriptor (7)
    if len(data) < pos:
        return 0
    flags = data[10]
    if flags & 0x80:
        pos += 3 * (1 << ((flags & 0x07) + 1))
    frames = 0
    while pos < len(data) and frames <= stop_after:
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor: 9 bytes, optional local table, LZW size byte
            frames += 1
            if pos + 10 > len(data):
                break
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (1 << ((local & 0x07) + 1))
            pos = _skip_sub_blocks(data, pos + 1)
        else:  # not a GIF block: stop counting; the decoder reports corruption
            break
    return frames


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos
