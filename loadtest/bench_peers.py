"""The libvips peers of `imgpipe bench`: pyvips in-process, and sharp through Node.

Both are optional. pyvips comes with the `bench` extra; sharp needs `node` and the `sharp`
package that `make bench-peers` installs into `.bench-peers/` (ignored by git).
"""

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.imaging import RenditionSpec
from core.imaging.encode import WEBP_METHOD

PEERS_DIR = Path(__file__).resolve().parent.parent / ".bench-peers"
SHARP_SCRIPT = Path(__file__).resolve().parent / "sharp_peer.cjs"
SHARP_MODES = {"sharp-cascade": "cascade", "sharp-per-rendition": "per-rendition"}


def _pyvips() -> Any:
    """pyvips with its loaders and savers, which the engine (core.imaging.resample) blocks
    for itself: this peer decodes and encodes with libvips. Each (image, strategy) pair runs
    in a fresh process, so the engine never runs after this in the same one."""
    import pyvips  # deferred, as are the other optional peers: 57 ms

    for family in ("VipsForeignLoad", "VipsForeignSave"):
        pyvips.operation_block_set(family, False)
    return pyvips


def pyvips_per_rendition(data: bytes, specs: Sequence[RenditionSpec]) -> list[bytes]:
    """One `thumbnail_buffer` (a shrink-on-load decode) per rendition: the weak way."""
    pyvips = _pyvips()
    outputs = []
    for spec in specs:
        crop = "centre" if spec.fit == "cover" else "none"
        size = "both" if spec.fit == "cover" else "down"
        thumb = pyvips.Image.thumbnail_buffer(
            data, spec.width, height=spec.height, size=size, crop=crop
        )
        outputs.append(_webp(thumb, spec))
    return outputs


def pyvips_cascade(data: bytes, specs: Sequence[RenditionSpec]) -> list[bytes]:
    """One shrink-on-load `thumbnail_buffer` to the largest rendition, then each smaller one
    resized from the previous full-frame result, held in memory (libvips used well)."""
    pyvips = _pyvips()
    order = sorted(range(len(specs)), key=lambda i: specs[i].width * specs[i].height, reverse=True)
    outputs: list[bytes] = [b""] * len(specs)
    previous: Any = None
    for index in order:
        spec = specs[index]
        crop = "centre" if spec.fit == "cover" else "none"
        size = "both" if spec.fit == "cover" else "down"
        if previous is None:
            image = pyvips.Image.thumbnail_buffer(
                data, spec.width, height=spec.height, size=size, crop=crop
            )
        else:
            image = previous.thumbnail_image(spec.width, height=spec.height, size=size, crop=crop)
        # Materialise once: libvips is lazy, and both the encoder and the next resize read it.
        image = image.copy_memory()
        outputs[index] = _webp(image, spec)
        if spec.fit == "inside":
            previous = image
    return outputs


def _webp(image: Any, spec: RenditionSpec) -> bytes:
    data: bytes = image.webpsave_buffer(Q=spec.effective_quality, effort=WEBP_METHOD, keep="none")
    return data


def pyvips_available() -> bool:
    try:
        import pyvips  # noqa: F401  # deferred (see pyvips_per_rendition): 35 ms
    except (ImportError, OSError):
        return False
    return True


def _node_env() -> dict[str, str]:
    # One core per image, as for every strategy: libuv's pool and libvips' threads are pinned.
    return {
        **os.environ,
        "NODE_PATH": str(PEERS_DIR / "node_modules"),
        "UV_THREADPOOL_SIZE": "1",
        "VIPS_CONCURRENCY": "1",
    }


def sharp_available() -> bool:
    """True when `node` runs and `make bench-peers` has installed sharp."""
    node = shutil.which("node")
    if node is None or not (PEERS_DIR / "node_modules" / "sharp").is_dir():
        return False
    probe = subprocess.run(
        [node, "-e", "require('sharp')"], env=_node_env(), capture_output=True, check=False
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class Measured:
    """What an external peer measured itself: wall and CPU ms per run, peak RSS, outputs."""

    ms: list[float]
    cpu_ms: list[float]
    rss_mb: float
    outputs: list[bytes]

    def without_first(self, runs: int) -> "Measured":
        """The same measurement without its first ``runs`` (warm-up) runs."""
        return Measured(self.ms[runs:], self.cpu_ms[runs:], self.rss_mb, self.outputs)


def run_sharp(strategy: str, path: Path, specs: Sequence[RenditionSpec], repeat: int) -> Measured:
    """Run a sharp strategy in Node; it times itself, so Node's start-up is not counted."""
    specs_json = json.dumps(
        [
            {
                "width": s.width,
                "height": s.height,
                "fit": s.fit,
                "quality": s.effective_quality,
                "effort": WEBP_METHOD,
            }
            for s in specs
        ]
    )
    with tempfile.TemporaryDirectory(prefix="imgpipe-sharp-") as out_dir:
        done = subprocess.run(
            ["node", str(SHARP_SCRIPT), SHARP_MODES[strategy], str(path), str(repeat), out_dir]
            + [specs_json],
            env=_node_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{strategy} failed on {path.name}: {done.stderr.strip()[-500:]}")
        result = json.loads(done.stdout)
        outputs = [Path(file).read_bytes() for file in result["files"]]
    return Measured(result["ms"], result["cpu_ms"], float(result["rss_mb"]), outputs)
