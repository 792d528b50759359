"""Build `imgpipe bench`'s photo corpus from downloaded Debian wallpaper packages.

`python -m loadtest.bench_corpus DEBS_DIR OUT_DIR` (`make bench-corpus` runs it): every
distinct JPEG of at least 3.5 MP in the packages, named after its theme, plus each package's
copyright file, so the licences travel with the photos.
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

MIN_PIXELS = 3_500_000


def extract(debs: Path, out: Path) -> int:
    """Copy the distinct large JPEGs of every ``.deb`` in ``debs`` to ``out``; their count."""
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="imgpipe-corpus-") as tmp:
        root = Path(tmp)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        for copyright_file in root.glob("usr/share/doc/*/copyright"):
            shutil.copy(copyright_file, out / f"{copyright_file.parent.name}.copyright")
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg") or path.is_symlink():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            with Image.open(path) as image:
                if image.width * image.height < MIN_PIXELS or digest in seen:
                    continue
            seen.add(digest)
            shutil.copy(path, out / f"{_theme(path, root)}-{digest[:8]}.jpg")
    return len(seen)


def _theme(path: Path, root: Path) -> str:
    """usr/share/wallpapers/THEME/contents/images/WxH.jpg gives THEME, else the file stem."""
    parts = path.relative_to(root).parts
    return parts[3] if parts[:3] == ("usr", "share", "wallpapers") else path.stem


if __name__ == "__main__":
    count = extract(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{count} photos in {sys.argv[2]}", file=sys.stderr)
