"""An external sort of tuples keyed by their first element: runs of ``chunk`` rows sorted in
memory and spilled to JSON-lines files, then merged lazily. Memory holds one chunk, then one
row per run."""

import heapq
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

DEFAULT_CHUNK: Final = 100_000  # rows held in memory before a run is spilled (tens of MB)


class ExternalSorter:
    """Add rows (tuples whose first element is a str key), then iterate them sorted by key."""

    def __init__(self, folder: Path, chunk: int = DEFAULT_CHUNK) -> None:
        self._folder = folder
        self._chunk = max(1, chunk)
        self._rows: list[tuple[Any, ...]] = []
        self._runs: list[Path] = []
        self.count = 0

    def add(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self._chunk:
            self._spill()

    @property
    def runs(self) -> int:
        return len(self._runs)

    def _spill(self) -> None:
        self._rows.sort(key=_first)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self._folder, suffix=".run", delete=False
        ) as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in self._rows)
        self._runs.append(Path(out.name))
        self._rows = []

    def sorted(self) -> Iterator[tuple[Any, ...]]:
        """Every row added, by key (rows of one key in no particular order)."""
        self._rows.sort(key=_first)
        files = [path.open(encoding="utf-8") for path in self._runs]
        try:
            yield from heapq.merge(iter(self._rows), *(_rows_of(f) for f in files), key=_first)
        finally:
            for file in files:
                file.close()


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _rows_of(file: IO[str]) -> Iterator[tuple[Any, ...]]:
    for line in file:
        yield tuple(json.loads(line))
