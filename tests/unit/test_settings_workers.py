"""The worker default: as many records as the function's memory holds at their worst."""

import pytest

from core.settings import Settings, default_workers

FIFTY_MP = 50_000_000


@pytest.mark.parametrize(
    ("memory_mb", "cpus", "expected"),
    [
        (1024, 2, 1),  # (1024 - 128) // 572 MB
        (2048, 2, 2),  # 3 fit, 2 CPUs
        (3008, 2, 2),
        (10240, 6, 6),
        (512, 2, 1),  # never 0: one record still runs (and the template refuses 512)
        (None, 4, 4),  # not on Lambda: the CPUs
    ],
)
def test_default_workers(memory_mb: int | None, cpus: int, expected: int) -> None:
    assert default_workers(memory_mb, FIFTY_MP, cpus) == expected


def test_max_pixels_is_the_memory_knob() -> None:
    assert default_workers(1024, FIFTY_MP, 8) == 1
    assert default_workers(1024, 12_000_000, 8) == 6


def test_settings_read_the_lambda_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}).workers == 1
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "4096"}).workers == 2
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
                              "IMGPIPE_WORKERS": "3"}).workers == 3  # fmt: skip
