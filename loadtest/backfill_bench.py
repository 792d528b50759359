"""Benchmark the backfill client: keys/s and peak RSS over millions of keys.

Each scenario runs the real ``infra.backfill`` pipeline (source, filters, message building,
senders, retries, state) through the full boto3/botocore request path: parameter handling,
JSON serialisation, endpoint resolution, SigV4 signing, response parsing. Only the network is
replaced, at botocore's own ``before-send`` event, by a successful ``SendMessageBatch`` answer
that lists every entry of the request (parsed from the request body) as Successful. The hook
counts the messages it saw; a run only passes if that count equals the keys in the input.

Every scenario runs in its own child process, so ``ru_maxrss`` is that scenario's peak.

    python -m loadtest.backfill_bench                       # 1M keys: --from-file and inventory
    python -m loadtest.backfill_bench --keys 1000000 10000000
    python -m loadtest.backfill_bench --e2e 5000            # also: real HTTP to a moto server
"""

import argparse
import csv
import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3

from core.aws import s3_client
from infra.backfill.clients import Clients, make_clients
from infra.backfill.options import Options, default_processes
from infra.backfill.run import Backfill, build_source
from infra.backfill.summary import Snapshot
from infra.local.canned import canned_response

BUCKET = "bench-bucket"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-jobs"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SOURCES = ("from-file", "inventory")
E2E = "e2e"
ETAG = "0123456789abcdef0123456789abcdef"


# ----------------------------------------------------------------------------------- inputs


def key_name(i: int) -> str:
    """Realistic keys: nested prefixes, a few with spaces and unicode (URL-encoding path)."""
    name = f"uploads/{i % 997:03d}/{i // 997:06d}/IMG_{i:08d}"
    if i % 10 == 0:
        name += " copy"
    if i % 50 == 0:
        name += " é+%"
    return name + (".jpg" if i % 3 else ".HEIC")


def write_key_file(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        out.writelines(key_name(i) + "\n" for i in range(count))


def write_inventory(folder: Path, count: int, files: int) -> Path:
    """A manifest.json and ``files`` gzipped CSVs (Bucket, Key, Size, LastModifiedDate, ETag,
    StorageClass), keys URL-encoded as S3 Inventory writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    per_file = -(-count // files)
    entries = []
    for f in range(files):
        name = f"data/bench-{f:03d}.csv.gz"
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wt", encoding="utf-8", newline="", compresslevel=1) as out:
            writer = csv.writer(out, quoting=csv.QUOTE_ALL)
            for i in range(f * per_file, min(count, (f + 1) * per_file)):
                modified = base + timedelta(seconds=i)
                writer.writerow(
                    [
                        BUCKET,
                        quote(key_name(i), safe="/"),
                        str(1000 + i % 5_000_000),
                        modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        ETAG,
                        "STANDARD",
                    ]
                )
        digest = hashlib.md5()
        with open(target, "rb") as written:  # streamed: the parent's RSS would leak into
            for block in iter(lambda: written.read(1 << 20), b""):  # the child's ru_maxrss
                digest.update(block)
        entries.append(
            {"key": name, "size": target.stat().st_size, "MD5checksum": digest.hexdigest()}
        )
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::bench-inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1704067200000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass",
        "files": entries,
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- the hook


class SqsStandIn:
    """A ``before-send`` handler answering SendMessageBatch as SQS does (JSON protocol).

    It parses the signed request botocore built and lists every entry as Successful, with the
    body's MD5 as SQS computes it, so the client does all its real work per call.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        if target != "AmazonSQS.SendMessageBatch":
            raise AssertionError(f"unexpected request {target!r} (expected the JSON protocol)")
        body = json.loads(request.body)
        successful = [
            {
                "Id": entry["Id"],
                "MessageId": f"00000000-0000-4000-8000-{entry['Id']:0>12}",
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
            }
            for entry in body["Entries"]
        ]
        with self._lock:
            self.calls += 1
            self.messages += len(successful)
        payload = json.dumps({"Successful": successful, "Failed": []}).encode()
        headers: Any = {  # botocore reads it as a mapping
            "x-amzn-RequestId": "bench",
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(payload)),
        }
        return canned_response(request.url, 200, payload, headers)


# ----------------------------------------------------------------------------------- child


def _status_mb(pid: int | str, field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (the process's own peak RSS) of a process, 0 once it is gone.
    ``ru_maxrss`` is not used: Linux carries the parent's peak over ``exec`` into it."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += [int(child), *_descendants(int(child))]
        except OSError:
            continue
    return found


def bench_clients(reports: Path, options: Options) -> Clients:
    """The backfill's own clients, with the stand-in on SendMessageBatch; at ``close()`` the
    process writes what the stand-in saw and its peak RSS to ``reports``. A module-level
    function, so that the sender processes make theirs the same way."""
    clients = make_clients(options)
    stand_in = SqsStandIn()
    clients.sqs.meta.events.register("before-send.sqs.SendMessageBatch", stand_in)

    def report() -> None:
        figures = {
            "pid": os.getpid(),
            "messages": stand_in.messages,
            "calls": stand_in.calls,
            "vm_hwm_mb": _status_mb("self", "VmHWM"),
        }
        (reports / f"{os.getpid()}.json").write_text(json.dumps(figures))

    clients.on_close = report
    return clients


def run_child(
    source: str, path: Path, keys: int, concurrency: int, processes: int
) -> dict[str, Any]:
    """One scenario in this process (and its sender processes), with ``FAKE_ENV``."""
    reports = Path(tempfile.mkdtemp(prefix="bench-report-", dir=path.parent))
    factory = partial(bench_clients, reports)
    state = path.parent / f"state-{source}-{keys}.json"
    state.unlink(missing_ok=True)
    options = Options(
        bucket=BUCKET,
        queue_url=QUEUE_URL,
        head=False,
        concurrency=concurrency,
        processes=processes,
        state_path=state,
        failures_path=path.parent / f"failures-{source}-{keys}.jsonl",
    )
    clients = factory(options)
    built = build_source(
        options,
        clients,
        from_file=str(path) if source == "from-file" else None,
        inventory=str(path) if source == "inventory" else None,
    )
    backfill = Backfill(options, built, clients, factory)
    rss: list[tuple[int, float]] = []
    peaks: dict[int, float] = {}  # pid -> the highest VmHWM seen

    def tick(snap: Snapshot) -> None:
        pids = [os.getpid(), *_descendants(os.getpid())]
        total = sum(_status_mb(pid, "VmRSS") for pid in pids)
        rss.append((snap.counts["sent"], round(total, 1)))
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0.0), _status_mb(pid, "VmHWM"))

    started = time.perf_counter()
    summary = backfill.run(tick)
    elapsed = time.perf_counter() - started
    tick(backfill.snapshot())  # the resource tracker is still alive: its final figures
    clients.close()
    seen = [json.loads(f.read_text()) for f in sorted(reports.glob("*.json"))]
    shutil.rmtree(reports)
    for figures in seen:  # each process's own last word on its peak
        peaks[figures["pid"]] = max(peaks.get(figures["pid"], 0.0), figures["vm_hwm_mb"])
    quarter = [rss[min(len(rss) - 1, len(rss) * q // 4)] for q in (1, 2, 3, 4)] if rss else []
    result = {
        "source": source,
        "keys": keys,
        "sent": summary.this_run["sent"],
        "hook_messages": sum(f["messages"] for f in seen),
        "hook_messages_by_process": [f["messages"] for f in seen],
        "calls": sum(f["calls"] for f in seen),
        "failed": summary.this_run["failed"],
        "complete": summary.complete,
        "elapsed_s": round(elapsed, 2),
        "keys_per_s": round(summary.this_run["sent"] / elapsed),
        "processes": processes,
        "concurrency": concurrency,
        # The sum of every process's own peak (the senders, the resource tracker and this
        # one): an upper bound on the memory in use at any moment.
        "peak_rss_mb": round(sum(peaks.values()), 1),
        "peak_rss_mb_by_process": [round(v, 1) for v in peaks.values()],
        "sampled_peak_rss_mb": max((r for _, r in rss), default=0.0),
        "rss_mb_at_quarters": quarter,
    }
    result["ok"] = bool(
        summary.complete
        and result["sent"] == keys == result["hook_messages"]
        and len(seen) == processes
    )
    return result


# ----------------------------------------------------------------------------------- e2e


def run_e2e(keys: int, concurrency: int, processes: int) -> dict[str, Any] | None:
    """Backfill ``keys`` listed objects into a real SQS queue on an embedded moto server over
    HTTP, and check the queue depth. moto's SQS gets slower as the queue grows (its calls scan
    the queue), so the per-segment rates are reported, not hidden."""
    # Deferred: moto's server (Flask and the moto backends) takes about 560 ms to import, and
    # only --e2e needs it.
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        return _run_scenario(E2E, None, keys, concurrency, processes, f"http://{host}:{port}")
    finally:
        server.stop()


def run_e2e_child(keys: int, concurrency: int, processes: int) -> dict[str, Any]:
    """The e2e scenario in a child whose ``AWS_ENDPOINT_URL`` is the moto server."""
    s3 = s3_client(32)
    sqs = boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    queue_url = sqs.create_queue(QueueName="bench-e2e")["QueueUrl"]

    def put(i: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=key_name(i), Body=b"x")

    put_started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(keys)))
    put_s = time.perf_counter() - put_started
    options = Options(BUCKET, queue_url, concurrency=concurrency, processes=processes)
    clients = make_clients(options)
    backfill = Backfill(options, build_source(options, clients), clients, make_clients)
    samples: list[tuple[float, int]] = []

    def tick(snap: Snapshot) -> None:
        samples.append((snap.elapsed_s, snap.counts["sent"]))

    started = time.perf_counter()
    summary = backfill.run(tick, tick_s=0.1)
    elapsed = time.perf_counter() - started
    depth = int(
        sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    return {
        "source": "list (moto server, HTTP)",
        "keys": keys,
        "sent": summary.this_run["sent"],
        "queue_depth": depth,
        "elapsed_s": round(elapsed, 2),
        "keys_per_s": round(summary.this_run["sent"] / elapsed),
        "segments": _segments(samples, keys),
        "put_objects_s": round(put_s, 1),
        "ok": summary.complete and depth == keys,
    }


def _segments(samples: list[tuple[float, int]], keys: int) -> list[dict[str, Any]]:
    """The send rate over each fifth of the keys (the queue depth grows as they are sent)."""
    segments = []
    step = max(1, keys // 5)
    for upto in range(step, keys + 1, step):
        first = next(((t, n) for t, n in samples if n >= upto - step), None)
        last = next(((t, n) for t, n in samples if n >= upto), None)
        if first and last and last[0] > first[0]:
            segments.append(
                {
                    "queue_depth": f"{upto - step}-{upto}",
                    "msg_per_s": round((last[1] - first[1]) / (last[0] - first[0])),
                }
            )
    return segments


# ----------------------------------------------------------------------------------- parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.backfill_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keys", type=int, nargs="+", default=[1_000_000], help="key counts (0: none)"
    )
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument(
        "--concurrency", type=int, default=8, help="backfill senders (the CLI default: 8)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[default_processes()],
        help="sender processes; several values run side by side, interleaved "
        f"(the CLI default here: {default_processes()})",
    )
    parser.add_argument("--inventory-files", type=int, default=4)
    parser.add_argument("--e2e", type=int, default=0, metavar="N", help="also N keys via moto")
    parser.add_argument("--workdir", type=Path, help="keep generated inputs here")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", choices=(*SOURCES, E2E), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == E2E:
        print(json.dumps(run_e2e_child(args.keys[0], args.concurrency, args.processes[0])))
        return 0
    if args.child:
        scenario = run_child(
            args.child, args.input, args.keys[0], args.concurrency, args.processes[0]
        )
        print(json.dumps(scenario))
        return 0

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for count in (n for n in args.keys if n > 0):
            for source in args.sources:
                started = time.perf_counter()
                if source == "from-file":
                    path = work / f"keys-{count}.txt"
                    if not path.exists():
                        write_key_file(path, count)
                else:
                    path = work / f"inventory-{count}" / "manifest.json"
                    if not path.exists():
                        write_inventory(path.parent, count, args.inventory_files)
                print(
                    f"{source} {count:,}: input ready in {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                )
                for processes in args.processes:
                    result = _run_scenario(source, path, count, args.concurrency, processes)
                    if result is None:
                        return 1
                    results.append(result)
                    print(_line(result), file=sys.stderr)
        if args.e2e:
            result = run_e2e(args.e2e, args.concurrency, args.processes[0])
            if result is None:
                return 1
            results.append(result)
            print(_line(result), file=sys.stderr)
            print(f"  moto rate by queue depth: {result['segments']}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


def _run_scenario(
    source: str,
    path: Path | None,
    keys: int,
    concurrency: int,
    processes: int,
    endpoint: str | None = None,
) -> dict[str, Any] | None:
    """One scenario in a fresh child process (so that its peak RSS is its own), with fake
    credentials and, for e2e only, an endpoint."""
    env = {name: value for name, value in os.environ.items() if name != "AWS_ENDPOINT_URL"}
    env.update(FAKE_ENV, **({"AWS_ENDPOINT_URL": endpoint} if endpoint else {}))
    argv = ["--child", source, "--keys", str(keys), "--concurrency", str(concurrency)]
    argv += ["--processes", str(processes), *(["--input", str(path)] if path else [])]
    child = subprocess.run(
        [sys.executable, "-m", "loadtest.backfill_bench", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def _line(result: dict[str, Any]) -> str:
    rss = (
        f"peak RSS {result['peak_rss_mb']:.0f} MB in {len(result['peak_rss_mb_by_process'])} "
        f"processes ({result['processes']} sending)"
        if "peak_rss_mb" in result
        else ""
    )
    return (
        f"{result['source']:>10} {result['keys']:>11,} keys: {result['keys_per_s']:>7,} keys/s  "
        f"{result['elapsed_s']:>7.1f} s  {rss}  {'ok' if result['ok'] else 'FAILED'}"
    )


if __name__ == "__main__":
    sys.exit(main())
