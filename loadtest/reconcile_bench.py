"""Benchmark reconcile's comparison: the table's rows sorted on disk and merged with a sorted
listing, at millions of rows. Each size runs in its own child process, so ``ru_maxrss`` is that
run's peak; memory should stay flat as the rows grow (one in-memory chunk, one row per run).

    python -m loadtest.reconcile_bench                     # 1M and 3M rows
    python -m loadtest.reconcile_bench --rows 10000000
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.reconcile.merge import merge_join
from infra.reconcile.sorting import ExternalSorter

_STRIDE = 7919  # a prime: i -> i * STRIDE % rows visits every row once, out of order


def run_once(rows: int) -> dict[str, Any]:
    """Sort ``rows`` table-like rows (in a scrambled order) and merge them with the listing
    of the same keys; every key must pair."""
    if rows % _STRIDE == 0:
        raise ValueError(f"rows must not be a multiple of {_STRIDE}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imgpipe-reconcile-bench-") as folder:
        sorter = ExternalSorter(Path(folder))
        for n in range(rows):
            sorter.add((f"uploads/{n * _STRIDE % rows:09d}/photo.jpg", "PROCESSED", "0" * 32))
        listing = ((f"uploads/{n:09d}/photo.jpg",) for n in range(rows))
        pairs = sum(1 for row, obj in merge_join(sorter.sorted(), listing) if row and obj)
        runs = sorter.runs
    if pairs != rows:
        raise AssertionError(f"{pairs} of {rows} keys paired")
    return {
        "rows": rows,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child)))
        return
    for rows in args.rows:
        command = [sys.executable, "-m", "loadtest.reconcile_bench", "--child", str(rows)]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
