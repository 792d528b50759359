"""The API function runs with little memory: its handler must import nothing of the engine."""

import subprocess
import sys

ENGINE_MODULES = ("PIL", "pillow_heif")


def _loaded_after_import(module: str) -> list[str]:
    code = (
        f"import sys, {module}\n"
        f"print(' '.join(m for m in sys.modules if m.split('.')[0] in {ENGINE_MODULES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_api_handler_imports_no_pillow() -> None:
    assert _loaded_after_import("handlers.api") == []


def test_settings_import_no_pillow() -> None:
    assert _loaded_after_import("core.settings") == []


def test_the_process_handler_does_load_the_engine() -> None:
    """The check can see an engine import when there is one."""
    assert "PIL" in _loaded_after_import("handlers.process")
