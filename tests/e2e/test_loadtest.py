"""The load-test harness: a small run on the embedded stack (accounting, every output and its
consistency with the samples), and unit tests of the percentiles, cost model and comparison."""

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.accounting import percentile
from loadtest.compare import compare, figures
from loadtest.cost import CostInputs, Prices, estimate, sqs_chunks, write_units
from loadtest.image_rows import ImageRow
from loadtest.sampling import CpuMeter, peak_rss_kb, process_cpu_seconds, rss_kb
from loadtest.stats import distribution, throughput_series
from loadtest.synthetic import photo_like_bytes
from loadtest.targets import target_from_stack
from loadtest.workload import parse_formats, parse_sizes

ROOT = Path(__file__).resolve().parents[2]
PERCENTILE_HEADER = "| latency (ms) | n | p50 | p90 | p99 | max | mean |"
CHART_TITLES = (
    "Latency CDF",
    "Throughput, queue depth and CPU over time",
    "Stage breakdown",
    "Outcomes and errors",
)


# ----------------------------------------------------------------------------- end to end


def loadtest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`imgpipe loadtest ...` in a clean subprocess (the stack sets process-wide variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMGPIPE_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "loadtest", *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )


def check_outputs(out: Path) -> dict[str, Any]:
    """Every output is present and parseable, and the figures agree with the samples."""
    results: dict[str, Any] = json.loads((out / "results.json").read_text("utf-8"))
    summary, images = results["summary"], results["images"]
    markdown = (out / "summary.md").read_text("utf-8")
    report = (out / "report.html").read_text("utf-8")
    assert PERCENTILE_HEADER in markdown
    assert "## Accounting: all accounted for" in markdown
    assert "Cost per million images" in markdown and "Emulator bottleneck:" in markdown
    assert report.count('<img alt="') == 4 and "data:image/png;base64," in report
    for title in CHART_TITLES:
        assert f"<h2>{title}</h2>" in report
    for name in ("latency_cdf", "timeline", "stages", "errors"):
        assert (out / "charts" / f"{name}.png").read_bytes().startswith(b"\x89PNG")

    processed = [r for r in images if r["status"] == "PROCESSED" and not r["warmup"]]
    for series in ("e2e", "queue_wait", "processing", "engine"):
        values = [r[f"{series}_ms"] for r in processed]
        figures_ = summary["latency_ms"][series]
        assert figures_["n"] == len(values)
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            assert figures_[name] == pytest.approx(percentile(values, fraction), abs=0.051)
        assert figures_["p50"] <= figures_["p90"] <= figures_["p99"] <= figures_["max"]
        assert figures_["max"] == pytest.approx(max(values), abs=0.051)
    for row in processed:
        stages = sum(row["timings_ms"].values())
        assert stages <= row["processing_ms"] + 2  # ms rounding of the ISO times
        # upload mode: moto queues the notification before PutObject has returned
        assert row["e2e_ms"] >= row["processing_ms"] - row["send_call_ms"] - 2
    assert results["timeseries"], "the sampler recorded nothing"
    return results


def test_small_synthetic_run_accounts_for_everything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = loadtest(
        "--synthetic",
        "18",
        "--warmup",
        "2",
        "--sizes",
        "0.3MP:70,0.1MP:30",
        "--formats",
        "jpeg:80,png:20",
        "--pool",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--concurrency",
        "4",
        "--sample-interval",
        "0.2",
        "--out",
        str(out),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert printed["out"] == str(out)
    results = check_outputs(out)
    summary, images = results["summary"], results["images"]
    assert len(images) == 20 and sum(r["warmup"] for r in images) == 2
    assert {r["status"] for r in images} == {"PROCESSED"}
    assert len({r["key"] for r in images}) == 20
    assert summary["accounting"] == {
        "sent": 20,
        "processed": 20,
        "failed": 0,
        "dlq": 0,
        "unaccounted": 0,
        "unaccounted_keys": [],
    }
    assert {r["format"] for r in images} <= {"jpeg", "png"}
    assert summary["throughput"]["images_per_s"] > 0
    resources = summary["resources"]
    assert resources["worker_peak_rss_mb"] > 20 and resources["queue_depth_peak"] >= 1
    assert 0 < resources["workers_util_run"] <= 1
    assert summary["cost"]["per_million"] > 0
    # a run compared with itself: every ratio is 1 and nothing regresses
    same = compare(out, out / "results.json")
    assert same["regressions"] == []
    assert all(f["ratio"] in (None, 1.0) for f in same["figures"])


def test_corpus_enqueue_open_loop_records_failures(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(3):
        (corpus / f"photo{index}.jpg").write_bytes(photo_like_bytes(320, 240, index))
    (corpus / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = tmp_path / "run"
    done = loadtest(
        "--corpus",
        str(corpus),
        "--count",
        "8",
        "--mode",
        "enqueue",
        "--rate",
        "20",
        "--out",
        str(out),
        "--no-calibrate",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processed" in done.stdout
    results = check_outputs(out)
    summary, images = results["summary"], results["images"]
    assert summary["run"]["mode"] == "enqueue" and "open loop" in summary["run"]["loop"]
    failed = [r for r in images if r["status"] == "FAILED"]
    assert len(images) == 8 and len(failed) == 2  # broken.jpg is sent twice (8 over 4 files)
    assert {r["reason"] for r in failed} == {"corrupt"}
    assert summary["errors"] == {"FAILED:corrupt": 2}
    assert summary["accounting"]["processed"] == 6 and summary["accounting"]["unaccounted"] == 0
    markdown = (out / "summary.md").read_text("utf-8")
    assert "| FAILED:corrupt | 2 |" in markdown


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = loadtest("--sizes", "twelve:1", "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert done.returncode == 2 and "bad size" in done.stderr


# ----------------------------------------------------------------------------- units


def test_sizes_and_formats_parse() -> None:
    sizes = parse_sizes("2MP:40, 12MP:50,0.3MP:10,.5")
    assert [(s.label, s.megapixels, s.weight) for s in sizes] == [
        ("2MP", 2.0, 40.0),
        ("12MP", 12.0, 50.0),
        ("0.3MP", 0.3, 10.0),
        ("0.5MP", 0.5, 1.0),
    ]
    width, height = sizes[1].dimensions
    assert abs(width * height - 12e6) < 0.01 * 12e6 and width * 3 == height * 4
    assert parse_formats("jpg:80,HEIC:10,png:10") == [("jpeg", 80), ("heic", 10), ("png", 10)]
    for bad in ("12XP:1", "0MP:1", "2MP:-1", ""):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    with pytest.raises(ValueError):
        parse_formats("tiff:1")


def test_distribution_uses_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    d = distribution(values)
    assert (d.n, d.p50, d.p90, d.p99, d.max, d.mean) == (
        100,
        50,
        90,
        99,
        100,
        50.5,
    )
    assert asdict(distribution([30.0, 10.0, 20.0])) == {
        "n": 3,
        "p50": 20.0,
        "p90": 30.0,
        "p99": 30.0,
        "max": 30.0,
        "mean": 20.0,
    }
    assert distribution([]).p50 is None
    assert distribution([7.0]).p99 == 7.0


def test_throughput_series_bins_by_finish_time() -> None:
    def row(sent_at: float, finished_at: float | None, source_bytes: int) -> ImageRow:
        return ImageRow(
            seq=0,
            key="k",
            warmup=False,
            size_class="1MP",
            format="jpeg",
            source_bytes=source_bytes,
            source_mp=1.0,
            sent_at=sent_at,
            send_call_ms=1.0,
            isolated_engine_ms=None,
            status="PROCESSED" if finished_at is not None else "UNACCOUNTED",
            finished_at=finished_at,
        )

    rows = [
        row(0.0, 0.2, 1_000_000),
        row(0.1, 0.9, 1_000_000),
        row(1.2, 2.5, 500_000),
        row(3.5, None, 1),
    ]
    bins = throughput_series(rows)
    assert [b.images for b in bins] == [2, 0, 1, 0]
    assert [b.sent for b in bins] == [2, 1, 0, 1]
    assert [b.mb_per_s for b in bins] == [2.0, 0.0, 0.5, 0.0]


def test_cost_model_matches_a_hand_computed_example() -> None:
    inputs = CostInputs(
        compute_ms_per_image=1000,
        puts_per_image=4,
        item_bytes=1500,
        message_bytes=1500,
        memory_mb=2048,
        architecture="arm64",
        batch_size=10,
    )
    result = estimate(inputs)
    lines = {line.component.split(" (")[0]: line.per_million for line in result.lines}
    # 1 s x 2 GB = 2 GB-s x $0.0000133334 = $26.6668 per million images
    assert lines["Lambda compute"] == pytest.approx(26.6668)
    assert lines["Lambda requests"] == pytest.approx(0.02)  # 0.1 request x $0.20 / M
    # send 1 + receive ceil(15 KB / 64 KB) / 10 + delete 1 / 10 = 1.2 requests x $0.40 / M
    assert lines["SQS requests"] == pytest.approx(0.48)
    assert lines["S3 PUT"] == pytest.approx(20.0)  # 4 x $0.005 / 1000
    assert lines["S3 GET"] == pytest.approx(0.40)
    assert lines["DynamoDB writes"] == pytest.approx(1.25)  # 1500 B -> 2 WRU x $0.625 / M
    assert lines["DynamoDB reads"] == pytest.approx(0.125)
    assert result.per_million == pytest.approx(48.9418)
    x86 = estimate(CostInputs(compute_ms_per_image=1000, architecture="x86_64", memory_mb=1024))
    assert x86.lines[0].per_million == pytest.approx(16.6667)
    cheap = estimate(inputs, Prices(s3_put_per_thousand=0.0))
    assert cheap.per_million == pytest.approx(28.9418)
    assert any("GB-s = compute ms x memory" in a for a in result.assumptions)
    assert sqs_chunks(64 * 1024) == 1 and sqs_chunks(64 * 1024 + 1) == 2
    assert write_units(1024) == 1 and write_units(1025) == 2
    with pytest.raises(ValueError):
        estimate(CostInputs(compute_ms_per_image=1, architecture="sparc"))


def _summary(e2e_p50: float, throughput: float, unaccounted: int = 0) -> dict[str, Any]:
    latency = {"p50": e2e_p50, "p90": e2e_p50 * 2, "p99": e2e_p50 * 3, "max": e2e_p50 * 4}
    return {
        "latency_ms": {"e2e": latency, "engine": {"p50": 100.0, "p90": None}},
        "throughput": {"images_per_s": throughput, "source_mb_per_s": throughput * 2},
        "stages_ms": {"render": 50.0},
        "cost": {"per_million": 30.0},
        "resources": {"workers_util_busy": 0.8, "other_util_busy": 0.02},
        "accounting": {"failed": 0, "dlq": 0, "unaccounted": unaccounted},
    }


def test_compare_marks_regressions(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "results.json").write_text(json.dumps({"summary": _summary(1000, 10.0)}))
    (b / "results.json").write_text(json.dumps({"summary": _summary(1150, 9.5, unaccounted=1)}))
    result = compare(a, b)
    rows = {row["figure"]: row for row in result["figures"]}
    assert rows["e2e p50 ms"]["ratio"] == 1.15 and rows["e2e p50 ms"]["regression"]
    assert rows["throughput images/s"]["ratio"] == 0.95
    assert not rows["throughput images/s"]["regression"]  # down 5%: within the threshold
    assert rows["unaccounted"]["regression"]
    assert not rows["stage render mean ms"]["regression"] and rows["cost per million USD"]
    assert "engine p90 ms" not in rows  # missing on both sides
    assert set(result["regressions"]) == {
        "e2e p50 ms",
        "e2e p90 ms",
        "e2e p99 ms",
        "e2e max ms",
        "unaccounted",
    }
    assert result["warnings"] == []
    noisy = _summary(1000, 10.0)
    noisy["resources"]["other_util_busy"] = 0.4
    (b / "results.json").write_text(json.dumps({"summary": noisy}))
    assert compare(a, b)["warnings"] == [
        (
            "run B shared the machine: other processes used 40% of the CPU, so its timings are "
            "not comparable"
        )
    ]
    (b / "results.json").write_text(json.dumps({"summary": _summary(1150, 9.5, unaccounted=1)}))
    # the other way round: latency down is an improvement, throughput up 5% is not
    back = {row["figure"]: row for row in compare(b, a)["figures"]}
    assert back["e2e p50 ms"]["improvement"] and not back["e2e p50 ms"]["regression"]
    slower = figures(_summary(1000, 10.0), _summary(1000, 8.9))
    assert [f.name for f in slower if f.regression()] == [
        "throughput images/s",
        "throughput source MB/s",
    ]


def test_compare_command_output_and_exit_code(tmp_path: Path) -> None:
    from infra.cli import main as imgpipe

    def main(argv: list[str]) -> int:
        return imgpipe(["loadtest", *argv])

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"summary": _summary(1000, 10.0)}))
    b.write_text(json.dumps({"summary": _summary(2000, 10.0)}))
    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 1
    assert main(["compare", str(a), str(a), "--fail-on-regression"]) == 0
    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 2


def test_proc_sampling_of_this_process() -> None:
    cpu = process_cpu_seconds(os.getpid())
    assert cpu is not None and cpu > 0
    assert peak_rss_kb(os.getpid()) >= rss_kb(os.getpid()) > 0
    assert process_cpu_seconds(2**22 + 12345) is None  # no such process
    meter = CpuMeter()
    start = meter.update({os.getpid()}, baseline=True)
    sum(math.sqrt(i) for i in range(300_000))
    assert meter.update({os.getpid()}) >= start >= 0
    assert meter.update(set()) >= 0  # the process left the set: its CPU is kept


def test_target_from_cloudformation_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    outputs = {
        "RawBucketName": "raw",
        "ProcessedBucketName": "out",
        "DeadLetterQueueUrl": "dlq-url",
        "TableName": "images",
        "QueueUrl": {"Ref": "Jobs"},
    }
    template = {
        "Parameters": {"BatchSize": {"Type": "Number", "Default": 7}},
        "Resources": {"Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(StackName="imgpipe", TemplateBody=json.dumps(template))
        target = target_from_stack("imgpipe", "eu-west-1")
        assert (target.raw_bucket, target.output_bucket, target.table, target.dlq_url) == (
            "raw",
            "out",
            "images",
            "dlq-url",
        )
        assert target.queue_url.endswith("/jobs") and target.batch_size == 7
        assert target.region == "eu-west-1" and not target.embedded
        bare = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}
        cloudformation.create_stack(StackName="bare", TemplateBody=json.dumps(bare))
        with pytest.raises(LookupError, match="RawBucketName"):
            target_from_stack("bare", "eu-west-1")


def test_bench_warmup_runs_first_and_is_not_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--warmup N: each pair's process runs the strategy N more times first (a warm Lambda's
    steady state), and only the runs after them are reported."""
    from loadtest import bench
    from loadtest.bench_peers import Measured

    calls: list[int] = []

    def counting(data: bytes, specs: object) -> list[bytes]:
        calls.append(len(data))
        return [bytes([len(calls)])]

    monkeypatch.setitem(bench.STRATEGIES, "counting", counting)
    image = tmp_path / "a.jpg"
    image.write_bytes(photo_like_bytes(64, 48))
    measured = bench._measure("counting", image, repeat=3, warmup=2)
    assert len(calls) == 5
    assert len(measured.ms) == len(measured.cpu_ms) == 3
    assert measured.outputs == [bytes([5])]
    # sharp times itself in Node: its first runs are dropped the same way.
    sharp = Measured([9.0, 1.0, 2.0], [8.0, 3.0, 4.0], 5.0, [b"w"])
    assert sharp.without_first(1) == Measured([1.0, 2.0], [3.0, 4.0], 5.0, [b"w"])


def test_bench_summary_splits_large_photos_by_jpeg_coding() -> None:
    """The ratios are medians of per-image pairs, per group; progressive JPEGs get their own
    group because libjpeg's coefficient buffer bounds their peak RSS."""
    from loadtest.bench import Sample, summarise

    def pair(name: str, mp: float, progressive: bool, ms: float, rss: float) -> list[Sample]:
        return [
            Sample(name, mp, "imgpipe", ms, 1000, rss, 0.97, progressive),
            Sample(name, mp, "naive", 3 * ms, 1000, 100.0, 0.97, progressive),
        ]

    samples = [
        *pair("small.jpg", 4.0, False, 10, 50.0),
        *pair("base.jpg", 12.0, False, 20, 20.0),
        *pair("prog.jpg", 12.0, True, 30, 60.0),
    ]
    summary = summarise(samples, ["imgpipe", "naive"])
    assert list(summary) == [
        "all",
        ">=8MP",
        ">=8MP baseline JPEG and other formats",
        ">=8MP progressive JPEG",
    ]
    assert summary[">=8MP baseline JPEG and other formats"]["ratios"]["rss_vs_naive"] == 0.2
    assert summary[">=8MP progressive JPEG"]["ratios"]["rss_vs_naive"] == 0.6
    assert summary[">=8MP"]["ratios"]["rss_vs_naive"] == 0.4  # the median of 0.2 and 0.6
    assert summary["all"]["ratios"]["speedup_vs_naive"] == 3.0
    assert summary[">=8MP progressive JPEG"]["strategies"]["imgpipe"]["images"] == 1


def test_bench_cpu_ratio_is_against_the_faster_cascade_on_each_image() -> None:
    """Per image, imgpipe's CPU over the least CPU of the libvips cascades; then the median."""
    from loadtest.bench import Sample, summarise

    def image(name: str, mine: float, pyvips: float, sharp: float) -> list[Sample]:
        return [
            Sample(name, 4.0, strategy, 100.0, 1000, 10.0, 0.97, False, cpu)
            for strategy, cpu in (
                ("imgpipe", mine), ("pyvips-cascade", pyvips), ("sharp-cascade", sharp),
            )
        ]  # fmt: skip

    samples = [*image("a.jpg", 90, 100, 120), *image("b.jpg", 120, 150, 100)]
    strategies = ["imgpipe", "pyvips-cascade", "sharp-cascade"]
    ratios = summarise(samples, strategies)["all"]["ratios"]
    assert ratios["cpu_vs_faster_cascade"] == 1.05  # the median of 0.9 and 1.2
    assert ratios["cpu_vs_pyvips-cascade"] == 0.85  # the median of 0.9 and 0.8
    assert ratios["cpu_vs_sharp-cascade"] == 0.975  # the median of 0.75 and 1.2
