"""The backfill benchmark's own bookkeeping: every key goes through the botocore hook once, in
whichever sender process sent it, and every process reports (a quick run, not a measurement)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bench_sees_every_key_once_across_sender_processes(tmp_path: Path) -> None:
    report = tmp_path / "results.json"
    argv = ["--keys", "3000", "--processes", "1", "2", "--workdir", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.backfill_bench", *argv, "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(report.read_text())
    assert [(r["source"], r["processes"]) for r in results] == [
        ("from-file", 1),
        ("from-file", 2),
        ("inventory", 1),
        ("inventory", 2),
    ]
    for result in results:
        assert result["ok"] and result["complete"] and result["failed"] == 0
        assert result["sent"] == result["hook_messages"] == 3000
        assert len(result["hook_messages_by_process"]) == result["processes"]
        assert result["calls"] == 300  # 10 entries per SendMessageBatch
