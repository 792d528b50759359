"""The Lambda container image, proved as far as it can be without (and then with) a Docker engine.

* The Dockerfile parses; its base is the Lambda Python 3.12 image; every COPY source exists
  and survives .dockerignore; only core/, handlers/ and the lock come from the context; the
  final stage runs nothing (so no build tools or Ghostscript can land in it); CMD imports.
* docker/requirements.txt is hash-locked and does not drift from pyproject.toml.
* ``network``: the lock installs as wheels for manylinux x86_64 and aarch64 within 150 MB.
* ``docker``: the image builds and answers an SQS event through the Runtime Interface Emulator.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
REQUIREMENTS = ROOT / "docker" / "requirements.txt"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_TAG = "public.ecr.aws/lambda/python:3.12"
PINNED = re.compile(rf"^{re.escape(BASE_TAG)}@sha256:[0-9a-f]{{64}}$")
SIZE_BUDGET_MB = 150
# Context paths the image may take: the code it runs and the lock, nothing else.
ALLOWED_CONTEXT_SOURCES = {"core", "handlers", "docker/requirements.txt"}


# ------------------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> Any:
    dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dev dep dockerfile-parse")
    return dockerfile_parse.DockerfileParser(str(DOCKERFILE), env_replace=True)


def _stages(dockerfile: Any) -> list[list[dict[str, Any]]]:
    """The instructions of each build stage (a stage starts at FROM)."""
    stages: list[list[dict[str, Any]]] = []
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def _copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    """``COPY [--flag=v...] src... dest`` (shell or JSON form) -> flags, sources, dest."""
    value = value.strip()
    flags: dict[str, str] = {}
    while value.startswith("--"):
        flag, _, value = value.partition(" ")
        key, _, val = flag[2:].partition("=")
        flags[key] = val
        value = value.strip()
    args = json.loads(value) if value.startswith("[") else value.split()
    return flags, args[:-1], args[-1]


def test_bases_are_the_lambda_python_image(dockerfile: Any) -> None:
    assert dockerfile.parent_images
    (base,) = set(dockerfile.parent_images)
    assert PINNED.match(base), f"{base} is not {BASE_TAG} pinned by digest"
    assert len(_stages(dockerfile)) >= 2, "multi-stage build expected"


def test_copy_sources_exist_and_are_only_code_and_lock(dockerfile: Any) -> None:
    sources = []
    for stage in _stages(dockerfile):
        for instruction in stage:
            if instruction["instruction"] not in ("COPY", "ADD"):
                continue
            assert instruction["instruction"] == "COPY", "use COPY, not ADD"
            flags, srcs, _ = _copy_args(instruction["value"])
            if "from" in flags:
                continue  # from another stage, not the build context
            sources.extend(srcs)
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY source {src} does not exist"
        assert not _dockerignored(src.rstrip("/")), f"COPY source {src} is in .dockerignore"
    assert {s.rstrip("/") for s in sources} == ALLOWED_CONTEXT_SOURCES


def test_final_stage_runs_nothing(dockerfile: Any) -> None:
    """No RUN in the final stage: no package manager, compiler or Ghostscript can get in;
    the build stage installs wheels only."""
    final = _stages(dockerfile)[-1]
    assert [i["instruction"] for i in final if i["instruction"] == "RUN"] == []
    runs = " ".join(i["value"] for i in dockerfile.structure if i["instruction"] == "RUN")
    assert "--only-binary=:all:" in runs and "--require-hashes" in runs
    for tool in ("yum", "dnf", "microdnf", "apt-get", "gcc", "make ", "ghostscript", "gs "):
        assert tool not in runs, f"{tool!r} in a RUN instruction"


def test_cmd_is_the_process_handler(dockerfile: Any) -> None:
    assert json.loads(dockerfile.cmd) == ["handlers.process.handler"]


def _handler_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMGPIPE_"))}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        IMGPIPE_RAW_BUCKET="imgpipe-raw",
        IMGPIPE_OUTPUT_BUCKET="imgpipe-processed",
        IMGPIPE_TABLE="imgpipe-images",
        IMGPIPE_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/imgpipe-jobs",
        POWERTOOLS_SERVICE_NAME="imgpipe",
        POWERTOOLS_METRICS_NAMESPACE="imgpipe",
        PYTHONPATH=str(ROOT),
    )
    return env


def _image_commands() -> list[str]:
    """The Dockerfile's CMD and every ``ImageConfig.Command`` of the template."""
    from infra.template.loading import load_template

    cmds = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    commands: list[str] = json.loads(cmds[-1]) if cmds else []
    for resource in load_template()["Resources"].values():
        commands += (resource.get("Properties") or {}).get("ImageConfig", {}).get("Command", [])
    return sorted(set(commands))


@pytest.mark.parametrize("command", _image_commands())
def test_image_commands_import_and_are_callable(command: str) -> None:
    """The CMD and every ImageConfig.Command of the template resolve to a callable, in a
    fresh interpreter with only the image's code on the path (the way Lambda loads it)."""
    module, _, attr = command.rpartition(".")
    code = (
        "import importlib, sys\n"
        f"fn = getattr(importlib.import_module({module!r}), {attr!r})\n"
        "sys.exit(0 if callable(fn) else 3)\n"
    )
    proc = _run_with_image_code(code)
    assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"


def _run_with_image_code(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that sees the handler settings, as Lambda would."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_handler_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_process_handler_imports_only_the_runtime() -> None:
    """Cold starts stay small: the handler pulls in no CLI, local-stack or dev-only module.

    The import time itself is a benchmark figure, not a test bound (this machine is shared):
    ``python -X importtime -c "import handlers.process"`` measured about 230 ms here.
    """
    probe = (
        "import sys, handlers.process; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = _run_with_image_code(probe)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(proc.stdout.split())
    assert {"core", "handlers", "boto3", "PIL", "aws_lambda_powertools"} <= loaded
    unwanted = {"infra", "loadtest", "moto", "rich", "yaml", "matplotlib", "pytest", "requests"}
    assert not loaded & unwanted, f"the handler imports {sorted(loaded & unwanted)}"


# ---------------------------------------------------------------------- .dockerignore


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(line):
            if line.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif line.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif line[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif line[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif line[i] == "[":
                end = line.index("]", i)
                regex, i = regex + line[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(line[i]), i + 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in _dockerignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_admits_code_and_lock_only() -> None:
    for kept in ("core/__init__.py", "handlers/process.py", "docker/requirements.txt"):
        assert not _dockerignored(kept), kept
    for dropped in (
        "tests/e2e/test_docker.py",
        ".venv/bin/python",
        ".git/HEAD",
        "infra/template.yaml",
        "loadtest/report.html",
        "pyproject.toml",
        "docker/Dockerfile",
        "core/__pycache__/x.cpython-312.pyc",
        "handlers/sub/__pycache__/y.pyc",
        "core/imaging/x.pyc",
    ):
        assert _dockerignored(dropped), dropped
    for source in ROOT.glob("core/**/*.py"):
        assert not _dockerignored(source.relative_to(ROOT).as_posix()), source


# -------------------------------------------------------------------------- the lock


def _locked() -> dict[str, tuple[str, list[str]]]:
    """Canonical name -> (pinned version, hashes) from a ``--generate-hashes`` lock."""
    text = REQUIREMENTS.read_text(encoding="utf-8").replace("\\\n", " ")
    locked: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        assert sep, f"not pinned with ==: {requirement}"
        name = name.split("[", 1)[0].split(";", 1)[0]
        hashes = [o.split("=", 1)[1] for o in options if o.startswith("--hash=")]
        locked[canonicalize_name(name)] = (version.split(";", 1)[0], hashes)
    return locked


def test_lock_is_pinned_with_hashes() -> None:
    locked = _locked()
    assert locked
    for name, (version, hashes) in locked.items():
        assert version, name
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{name} has no hash"
    assert "make docker-requirements" in REQUIREMENTS.read_text(encoding="utf-8")


def test_lock_does_not_drift_from_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = _locked()
    runtime = [Requirement(spec) for spec in project["dependencies"]]
    assert runtime
    for req in runtime:
        if req.marker is not None and not req.marker.evaluate(
            {"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux"}
        ):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is a runtime dependency but not in the lock"
        version = locked[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}=={version} in the lock violates pyproject's {req.specifier};"
            " run `make docker-requirements`"
        )


def test_the_suite_runs_the_runtime_the_image_ships() -> None:
    """`make test` installs with the lock's pins as constraints (the Makefile's LOCK_PINS), so
    every locked package installed here has the version the image ships: what passes here is
    what deploys, and a new release within pyproject's ranges cannot change it."""
    from importlib import metadata

    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    locked = {name: version for name, (version, _) in _locked().items()}
    here = {name: installed[name] for name in locked if name in installed}
    assert "pillow" in here and "boto3" in here
    assert here == {name: locked[name] for name in here}, "run `make test` to reinstall"


# -------------------------------------------------------- network: wheels for both arches


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _index_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"{_index_url()}/pip/", timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.mark.network
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_lock_installs_as_wheels_for_lambda(arch: str, tmp_path: Path) -> None:
    """Wheels exist for the Lambda platform and the installed tree fits the budget.

    Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels are
    valid there as well as manylinux2014 ones; Pillow >= 12 and pillow-heif ship only
    manylinux_2_28 wheels for CPython 3.12, hence both tags.
    """
    if not _index_reachable():
        pytest.skip(f"package index {_index_url()} is not reachable")
    target = tmp_path / arch
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target),
        "--platform", f"manylinux2014_{arch}",
        "--platform", f"manylinux_2_28_{arch}",
        "--implementation", "cp", "--python-version", "3.12",
        "--only-binary=:all:", "--no-binary=pyvips", "--no-deps", "--require-hashes",
        "-r", str(REQUIREMENTS),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    size_mb = _tree_bytes(target) / 1e6
    print(f"\ndocker/requirements.txt installed for manylinux {arch}: {size_mb:.1f} MB")
    installed = (
        "PIL",
        "pillow_heif",
        "pyvips",
        "_libvips.abi3.so",
        "nanoarrow",
        "boto3",
        "aws_lambda_powertools",
    )
    for package in installed:
        assert (target / package).exists(), package
    assert size_mb <= SIZE_BUDGET_MB


# ------------------------------------------------------- docker: build and invoke via RIE


def _docker_client() -> Any:
    try:
        # Not a plain import: the repository's docker/ folder would shadow it for mypy.
        docker: Any = importlib.import_module("docker")
        docker.from_env  # noqa: B018 - the SDK, not the docker/ namespace folder
    except (ImportError, AttributeError):
        pytest.skip("the docker Python SDK is not installed")

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}: {exc})")
    return client


def _sqs_test_event() -> dict[str, Any]:
    body = json.dumps(
        {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2025-01-01T00:00:00.000Z",
            "Bucket": "imgpipe-raw",
            "RequestId": "TESTREQUEST",
            "HostId": "TESTHOST",
        }
    )
    return {
        "Records": [
            {
                "messageId": "19dd0b57-b21e-4ac1-bd88-01bbb068cb78",
                "receiptHandle": "MessageReceiptHandle",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1735689600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1735689600001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:imgpipe-jobs",
                "awsRegion": "us-east-1",
            }
        ]
    }


@pytest.mark.docker
def test_image_builds_and_handles_an_sqs_event() -> None:
    client = _docker_client()
    image, _ = client.images.build(
        path=str(ROOT), dockerfile="docker/Dockerfile", tag="imgpipe:test", rm=True
    )
    env = {k: v for k, v in _handler_env().items() if k.startswith(("AWS_", "IMGPIPE_", "POWER"))}
    container = client.containers.run(
        image.id, detach=True, environment=env, ports={"8080/tcp": ("127.0.0.1", None)}
    )
    try:
        tools = container.exec_run(["sh", "-c", "command -v gcc cc gs yum dnf || true"])
        assert tools.output.strip() == b"", tools.output
        container.reload()
        port = container.ports["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
        request = urllib.request.Request(url, data=json.dumps(_sqs_test_event()).encode())
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    result = json.loads(response.read())
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert result == {"batchItemFailures": []}, result  # s3:TestEvent is acknowledged
    finally:
        container.remove(force=True)
