"""What delivery costs per image, measured side by side in one run: the placeholder (ThumbHash
and dominant colour) against the whole render, and the ``responsive`` preset (every size in
AVIF, WebP and JPEG) against ``default`` (WebP only).

    python -m loadtest.delivery_bench                  # the bundled samples (infra/samples)
    python -m loadtest.delivery_bench DIR --repeat 5 --synthetic 4000x3000 --json

Each figure is the median of ``--repeat`` runs in this process, one thread (as one Lambda
worker runs a record). Files the engine rejects are listed as such and not timed.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from core.imaging import ImageRejected, Limits, parse_renditions
from core.imaging.decode import decode
from core.imaging.engine import render
from core.imaging.placeholder import placeholder_of, placeholder_spec
from core.imaging.resize import render_each
from loadtest.synthetic import photo_like_bytes

SAMPLES = Path(__file__).resolve().parent.parent / "infra" / "samples"
PRESETS = ("default", "responsive")


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _placeholder_ms(data: bytes, repeat: int) -> float:
    """The placeholder alone, from the very rendition the engine feeds it."""
    limits = Limits()
    specs = parse_renditions("default")
    decoded = decode(data, limits)
    spec = placeholder_spec(specs, decoded.width, decoded.height)
    assert spec is not None
    [(_, image)] = render_each(decoded.take_image(), [spec], decoded.width, decoded.height)
    return _median_ms(lambda: placeholder_of(image), repeat)


def measure(name: str, data: bytes, repeat: int) -> dict[str, Any]:
    row: dict[str, Any] = {"file": name, "bytes": len(data)}
    try:
        for preset in PRESETS:
            row[f"{preset}_ms"] = _median_ms(partial(render, data, parse_renditions(preset),
                                                     Limits()), repeat)  # fmt: skip
        row["placeholder_ms"] = _placeholder_ms(data, repeat)
    except ImageRejected as rejection:
        return {"file": name, "rejected": rejection.reason}
    row["placeholder_share"] = round(row["placeholder_ms"] / row["default_ms"], 4)
    row["responsive_ratio"] = round(row["responsive_ms"] / row["default_ms"], 2)
    return row


def _inputs(folder: Path, synthetic: list[str]) -> list[tuple[str, bytes]]:
    found = [(path.name, path.read_bytes()) for path in sorted(folder.iterdir()) if path.is_file()]
    for size in synthetic:
        width, _, height = size.partition("x")
        found.append((f"synthetic {size}", photo_like_bytes(int(width), int(height), seed=1)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.delivery_bench",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("folder", nargs="?", type=Path, default=SAMPLES)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--synthetic", action="append", default=[], metavar="WxH",
                        help="also a synthetic photo of this size; repeat for more")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per input")
    args = parser.parse_args(argv)
    if not args.folder.is_dir() or args.repeat < 1:
        print(f"error: {args.folder} is not a folder, or --repeat < 1", file=sys.stderr)
        return 2
    try:
        for name, data in _inputs(args.folder, args.synthetic):
            row = measure(name, data, args.repeat)
            if args.json:
                print(json.dumps(row), flush=True)
            elif "rejected" in row:
                print(f"{name:<22} rejected: {row['rejected']}", flush=True)
            else:
                print(f"{name:<22} default {row['default_ms']:>8.1f} ms   responsive "
                      f"{row['responsive_ms']:>8.1f} ms ({row['responsive_ratio']:.2f}x)   "
                      f"placeholder {row['placeholder_ms']:>5.2f} ms "
                      f"({row['placeholder_share']:.1%} of default)", flush=True)  # fmt: skip
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
