"""The `imgpipe` commands as a first-time user meets them: --help, --json, and a clear
one-line error (never a traceback) for a bad argument or a missing AWS setup."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from imaging_fixtures import quadrants, to_bytes

from infra.cli import COMMAND_MODULES, main

pytestmark = pytest.mark.usefixtures("wide")

SCRIPT = Path(sys.executable).with_name("imgpipe")
PROCESSING_ENV = {
    "IMGPIPE_RAW_BUCKET": "raw",
    "IMGPIPE_OUTPUT_BUCKET": "processed",
    "IMGPIPE_TABLE": "images",
}


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help at the terminal width


def help_text(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No region, profile or endpoint from the developer's shell or ~/.aws."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "IMGPIPE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return monkeypatch


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_every_command_has_help_and_json(capsys: pytest.CaptureFixture[str], command: str) -> None:
    """The README's promise: every command has --help, and --json for machine output."""
    assert "--json" in help_text(capsys, command)


def test_every_worker_option_is_explained_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    lines = {line.strip().split("  ")[0]: line for line in capsys.readouterr().out.strip().splitlines()
             if line.startswith("  --")}  # fmt: skip
    for option, explained in (
        ("--queue-url URL", "the jobs queue to poll"),
        ("--processes N", f"(default: the CPU count, {os.cpu_count() or 1})"),
        ("--batch-size N", "(default: 10)"),
        ("--batch-window S", "(default: 0.0)"),
        ("--json", "JSON summary"),
    ):
        assert explained in lines[option], option


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        ("up", ["(default: 8080)"]),
        ("demo", ["(default: imgpipe-out)", "(default: 300)", "(default: the CPU count,",
                  "(default: the bundled samples)"]),
    ],
)  # fmt: skip
def test_defaults_are_shown(
    capsys: pytest.CaptureFixture[str], command: str, defaults: list[str]
) -> None:
    text = help_text(capsys, command)
    for default in defaults:
        assert default in text


@pytest.mark.parametrize("port", ["80000", "-1", "http"])
def test_up_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str], port: str) -> None:
    err = usage_error(capsys, "up", "--port", port)
    assert "argument --port: " in err and "Traceback" not in err


def test_up_on_a_port_in_use_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["up", "--port", str(port)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_backfill_without_a_target_prints_the_usage_verbatim(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    """Its own message holds `[/PREFIX]`, which rich markup would take for a closing tag."""
    assert main(["backfill"]) == 2
    err = capsys.readouterr().err
    assert err == "error: s3://BUCKET[/PREFIX] is required (unless --inventory is given)\n"


def test_backfill_without_a_region_says_so(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    assert main(["backfill", "s3://bucket", "--queue-url", "http://127.0.0.1:9/q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS region: set AWS_DEFAULT_REGION") and "Traceback" not in err


def test_worker_without_a_region_says_so(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    for name, value in PROCESSING_ENV.items():
        no_aws.setenv(name, value)
    assert main(["worker", "--queue-url", "http://127.0.0.1:9/q"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: cannot use queue http://127.0.0.1:9/q: no AWS region"
    )


def test_worker_with_an_unreachable_endpoint_says_so(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {**PROCESSING_ENV, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
    for name, value in env.items():
        no_aws.setenv(name, value)
    assert main(["worker", "--queue-url", f"{endpoint}/123456789012/jobs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use queue ") and "Could not connect" in err


def test_worker_without_settings_names_them(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    assert main(["worker", "--queue-url", "http://127.0.0.1:9/q"]) == 2
    assert capsys.readouterr().err.startswith("error: missing setting(s): IMGPIPE_RAW_BUCKET")


@pytest.mark.parametrize(
    "argv",
    [["--batch-size", "0"], ["--batch-size", "10001"], ["--processes", "0"],
     ["--batch-window", "301"], ["--batch-size", "ten"]],
)  # fmt: skip
def test_worker_refuses_values_lambda_refuses(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = usage_error(capsys, "worker", "--queue-url", "http://127.0.0.1:9/q", *argv)
    assert f"argument {argv[0]}: " in err


@pytest.mark.parametrize(
    ("command", "option", "value", "reason"),
    [(["bench", "corpus"], "--repeat", "0", "0 is not at least 1"),
     (["bench", "corpus"], "--warmup", "-1", "-1 is not at least 0"),
     (["bench", "corpus"], "--warmup", "one", "not a number: 'one'"),
     (["loadtest"], "--warmup", "-5", "-5 is not at least 0"),
     (["loadtest"], "--workers", "0", "0 is not at least 1"),
     (["loadtest"], "--rate", "0", "0 is not above 0"),
     (["loadtest"], "--rate", "-2", "-2 is not above 0"),
     (["loadtest"], "--duration", "0", "0 is not above 0"),
     (["loadtest"], "--sample-interval", "0.05", "0.05 is not at least 0.1"),
     (["loadtest"], "--memory-mb", "64", "64 is not in 128-10240"),
     (["loadtest"], "--compute-scale", "0", "0 is not above 0"),
     (["backfill", "s3://raw"], "--page-size", "1001", "1001 is not in 1-1000"),
     (["backfill", "s3://raw"], "--page-size", "0", "0 is not in 1-1000"),
     (["backfill", "s3://raw"], "--retries", "-1", "-1 is not at least 0"),
     (["backfill", "s3://raw"], "--sample", "-1", "-1 is not at least 0"),
     (["backfill", "s3://raw"], "--max-rate", "0", "0 is not above 0"),
     (["backfill", "s3://raw"], "--state-interval", "-1", "-1 is not at least 0"),
     (["reconcile"], "--min-age", "-60", "-60 is not at least 0"),
     (["reconcile"], "--min-age", "nan", "nan is not at least 0"),
     (["reconcile"], "--sample", "-2", "-2 is not at least 0"),
     (["loadtest"], "--batch-window", "301", "301 is not in 0-300"),
     (["loadtest", "compare", "a", "b"], "--threshold", "-0.1", "-0.1 is not at least 0"),
     (["up"], "--workers", "0", "0 is not in 1-1024"),
     (["up"], "--function-timeout", "901", "901 is not in 1-900"),
     (["up"], "--visibility-timeout", "-5", "-5 is not in 0-43200"),
     (["demo"], "--workers", "0", "0 is not in 1-1024"),
     (["demo"], "--timeout", "0", "0 is not above 0")],
)  # fmt: skip
def test_out_of_range_counts_are_refused_not_clamped(
    capsys: pytest.CaptureFixture[str], command: list[str], option: str, value: str, reason: str
) -> None:
    """A value the command cannot honour is a usage error, not quietly another value."""
    err = usage_error(capsys, *command, option, value)
    assert f"argument {option}: {reason}" in err
    assert "Traceback" not in err


def test_worker_batch_over_10_needs_a_window(
    capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch
) -> None:
    assert main(["worker", "--queue-url", "http://127.0.0.1:9/q", "--batch-size", "11"]) == 2
    assert "--batch-window" in capsys.readouterr().err


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """`imgpipe render ... --json | head -0`: no BrokenPipeError traceback."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(to_bytes(quadrants(64, 48), "PNG"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first byte is written
    try:
        run = subprocess.run(
            [str(SCRIPT), "render", str(photo), "--out", str(tmp_path / "o"), "--json"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (run.returncode, run.stderr) == (141, "")
