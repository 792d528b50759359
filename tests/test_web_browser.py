"""The upload page end to end in real headless Chromium, against `imgpipe up`.

Chromium comes from Debian (`apt-get install -y chromium`, which `make test` does); Playwright
for Python drives it through ``executable_path`` (no `playwright install`). Without Chromium
or Playwright the test skips with the reason; it never skips silently.
"""

import io
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.synthetic import photo_like

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_S = 90
RESULT_TIMEOUT_MS = 120_000
FINISHED = ("done", "failed", "refused", "error")


def chromium_path() -> str:
    """Debian's Chromium, or a skip that says how to get it."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(
        "Chromium is not installed and the browser test needs it: "
        "run `apt-get install -y chromium` (make test does this when it can)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`imgpipe up` in a subprocess, its output collected by a reader thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "up", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def log(self) -> str:
        return "".join(self.output[-80:])

    def wait_ready(self) -> None:
        """Until it prints a line with the page URL, then until the page and /config answer."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        announced = False
        while not announced:
            if self.process.poll() is not None:
                pytest.fail(f"`imgpipe up` exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"`imgpipe up` printed no ready line with {self.url}:\n{self.log()}")
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            announced = f"127.0.0.1:{self.port}" in line
        for path in ("", "config"):
            while True:
                try:
                    with urllib.request.urlopen(self.url + path, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{self.url}{path} never answered 200:\n{self.log()}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def imgpipe_up() -> Iterator[Server]:
    server = Server(free_port())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def upload_files(tmp_path: Path) -> dict[str, Path]:
    """A JPEG photo, a HEIC photo and a text file that claims to be a JPEG."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is needed to write HEIC")
    folder = tmp_path / "uploads"
    folder.mkdir()
    jpeg = folder / "harbour.jpg"
    photo_like(1600, 1200, seed=11).save(jpeg, "JPEG", quality=90)
    heic = folder / "meadow.heic"
    buffer = io.BytesIO()
    pillow_heif.from_pillow(photo_like(1200, 900, seed=12)).save(buffer, quality=80)
    heic.write_bytes(buffer.getvalue())
    fake = folder / "fake.jpg"
    fake.write_text("This is a plain text file with a .jpg name, not an image.\n" * 20)
    return {"jpeg": jpeg, "heic": heic, "fake": fake}


def launch_browser(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


def card(page: Any, name: str) -> Any:
    return page.locator(".file-card", has=page.locator(".file-name", has_text=name))


@pytest.fixture
def chromium() -> tuple[str, Any]:
    """Chromium's path and Playwright's sync API, checked before the stack starts."""
    executable = chromium_path()
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python drives Chromium: pip install playwright",
    )
    return executable, sync_api


def test_upload_page_in_headless_chromium(
    chromium: tuple[str, Any], imgpipe_up: Server, upload_files: dict[str, Path], tmp_path: Path
) -> None:
    executable, sync_api = chromium
    with sync_api.sync_playwright() as playwright:
        browser = launch_browser(playwright, executable)
        try:
            run_page(sync_api, browser, imgpipe_up, upload_files, tmp_path)
        finally:
            browser.close()


def console_error(message: Any, errors: list[str]) -> None:
    """Console errors, except the 404s of polling for a result that is not recorded yet."""
    if message.type != "error":
        return
    url = str(message.location.get("url", ""))
    if "/images/" in url and "404" in message.text:
        return
    errors.append(f"console: {message.text} ({url})")


def run_page(
    sync_api: Any, browser: Any, server: Server, files: dict[str, Path], tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    # A listener from the start turns file-chooser interception on before any click, so the
    # chooser the keyboard opens below is always reported (never a native dialog).
    choosers: list[Any] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda message: console_error(message, errors))
    page.goto(server.url)
    sync_api.expect(page.locator("#limits")).to_contain_text("per image")

    # The drop zone is a button reached with the keyboard; Enter opens the file picker.
    dropzone = page.locator("#dropzone")
    for _ in range(2):  # the skip link, then the drop zone
        page.keyboard.press("Tab")
    sync_api.expect(dropzone).to_be_focused()
    assert dropzone.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 10
    while not choosers and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert choosers, "Enter on the focused drop zone opened no file chooser"
    assert choosers[0].is_multiple()
    assert choosers[0].element.get_attribute("id") == "file-input"

    page.set_input_files("#file-input", [str(path) for path in files.values()])
    cards = page.locator(".file-card")
    sync_api.expect(cards).to_have_count(3)
    finished = ", ".join(f'[data-state="{state}"]' for state in FINISHED)
    page.wait_for_function(
        f"() => document.querySelectorAll('.file-card:is({finished})').length === 3",
        timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.file-card[data-state=done] .preview-img')]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=30_000,
    )

    renditions = page.evaluate("fetch('/config').then(r => r.json()).then(c => c.renditions)")
    assert renditions, "GET /config lists no renditions"
    for name in (files["jpeg"].name, files["heic"].name):
        item = card(page, name)
        status = item.locator(".file-status").inner_text()
        assert item.get_attribute("data-state") == "done", f"{name}: {status}\n{server.log()}"
        rows = item.locator(".rendition-table tbody tr")
        assert rows.count() == len(renditions)
        names = [rows.nth(i).get_attribute("data-rendition") for i in range(rows.count())]
        assert sorted(map(str, names)) == sorted(renditions)
        first = rows.first.inner_text()
        assert "×" in first and "%" in first, first
        thumb = item.locator(".preview-img")
        assert thumb.is_visible()
        assert thumb.get_attribute("alt") == f"Thumbnail of {name}"
        assert "thumb/" in (thumb.get_attribute("src") or "")
        assert thumb.evaluate("img => img.naturalWidth") > 0
        assert item.locator(".rendition-table a").count() == len(renditions)

    fake = card(page, files["fake"].name)
    assert fake.get_attribute("data-state") == "failed", fake.inner_text()
    assert fake.get_attribute("data-reason") == "unsupported_format"
    message = fake.locator(".file-status").inner_text()
    assert "Rejected" in message and "not an image" in message, message
    assert fake.locator(".rendition-table tbody tr").count() == 0
    assert fake.locator(".retry").is_hidden()
    assert errors == [], errors

    page.screenshot(path=str(tmp_path / "upload-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(tmp_path / "upload-page-mobile.png"), full_page=True)
    assert (tmp_path / "upload-page.png").stat().st_size > 10_000
