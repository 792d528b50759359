"""The upload page end to end in real headless Chromium, against `imgpipe up --json --port 0`.

Chromium comes from Debian (`apt-get install -y chromium`, which `make test` does); Playwright
for Python drives it through ``executable_path`` (no `playwright install`). Without Chromium
or Playwright the tests skip with the reason; they never skip silently.

Besides the happy path, the page must say in words why S3 refused an upload. Those tests drive
the page's own UI (the drop zone's file chooser) and alter the `/uploads` exchange inside the
page's JS context, by wrapping ``window.fetch``: no request is intercepted by Playwright, so the
browser's CORS handling (preflight included) is the real one.
"""

import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config

from loadtest.synthetic import photo_like

REPO = Path(__file__).resolve().parents[2]
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
STOP_TIMEOUT_S = 30
RESULT_TIMEOUT_MS = 120_000
UPLOAD_TIMEOUT_MS = 30_000
FINISHED = ("done", "failed", "refused", "error")
STOPPING = "stopping: finishing the batches in flight..."
WAITS_IN_QUEUE = "waits-in-queue.png"
ANNOUNCED = ("api_url", "endpoint_url", "region", "admin", "raw_bucket", "processed_bucket",
             "users")  # fmt: skip


def chromium_path() -> str:
    """Debian's Chromium, or a skip that says how to get it."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(
        "Chromium is not installed and the browser test needs it: "
        "run `apt-get install -y chromium` (make test does this when it can)"
    )


class Server:
    """`imgpipe up --json --port 0` in a subprocess: its one JSON line on stdout, its log
    (stderr) collected by a reader thread."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.info: dict[str, Any] = {}
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            # A short visibility timeout: WAITS_IN_QUEUE's injected failure returns in 3 s.
            [
                sys.executable,
                "-m",
                "infra.cli",
                "up",
                "--json",
                "--port",
                "0",
                "--visibility-timeout",
                "3",
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.process.stdout, self.lines.put),
                                 (self.process.stderr, self.output.append))
        ]  # fmt: skip
        for reader in self.readers:
            reader.start()

    @property
    def url(self) -> str:
        return f"{self.info['api_url']}/"

    def log(self) -> str:
        return "".join(self.output[-80:])

    def wait_ready(self) -> None:
        """Until the JSON line, then until the page and /config answer."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.info:
            if self.process.poll() is not None:
                pytest.fail(f"`imgpipe up` exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"`imgpipe up --json` printed no JSON line:\n{self.log()}")
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.info = json.loads(line)
            except ValueError:
                pytest.fail(f"`imgpipe up --json` printed a line that is not JSON: {line!r}")
        missing = [name for name in ANNOUNCED if name not in self.info]
        assert not missing, f"the JSON line lacks {missing}: {self.info}"
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
        """SIGINT, as Ctrl-C: the stack finishes the batches in flight and exits 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=5)

    def admin_s3(self) -> Any:
        """An S3 client with the operator's keys from the JSON line."""
        admin = self.info["admin"]
        return boto3.client(
            "s3",
            endpoint_url=self.info["endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id=admin["access_key_id"],
            aws_secret_access_key=admin["secret_access_key"],
            config=Config(signature_version="s3v4"),
        )


def _drain(stream: IO[str], sink: Callable[[str], object]) -> None:
    for line in stream:
        sink(line)


@dataclass
class Tab:
    """A browser page with the errors it reported."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def page_errors(self) -> list[str]:
        return [error for error in self.errors if error.startswith("page error:")]


@pytest.fixture(scope="module")
def chromium() -> tuple[str, Any]:
    """Chromium's path and Playwright's sync API, checked before the stack starts."""
    executable = chromium_path()
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python drives Chromium: pip install playwright",
    )
    return executable, sync_api


@pytest.fixture(scope="module")
def imgpipe_up(
    chromium: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # The first GetObject call of a file named WAITS_IN_QUEUE fails (503 on each of botocore's
    # 3 attempts: transient), so that upload waits in the queue for a visibility timeout and
    # the page polls PENDING meanwhile.
    chaos = tmp_path_factory.mktemp("chaos")
    for attempt in range(3):
        (chaos / f"failure-{attempt}").write_text("")
    server = Server({"IMGPIPE_CHAOS_DIR": str(chaos), "IMGPIPE_CHAOS_KEY": WAITS_IN_QUEUE})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, f"exit {server.process.returncode}:\n{server.log()}"
    assert STOPPING in "".join(server.output), server.log()


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, Any]) -> Iterator[Any]:
    executable, sync_api = chromium
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A fresh page (en-US, so that numbers print as "1,234"), its errors recorded."""
    page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en-US")
    opened = Tab(page)
    page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
    page.on("console", lambda message: console_error(message, opened.errors))
    try:
        yield opened
    finally:
        page.close()


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


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    photo_like(96, 64, seed=13).save(path, "PNG")
    return path


def card(page: Any, name: str) -> Any:
    return page.locator(".file-card", has=page.locator(".file-name", has_text=name))


def console_error(message: Any, errors: list[str]) -> None:
    """Every console error, polling's included: a waiting upload is 200 PENDING, not 404."""
    if message.type != "error":
        return
    url = str(message.location.get("url", ""))
    errors.append(f"console: {message.text} ({url})")


def open_page(sync_api: Any, page: Any, url: str, server: Server, user: str = "alice") -> None:
    """Load the page and sign in as ``user`` (one of the stack's demo users)."""
    page.goto(url)
    sync_api.expect(page.locator("#limits")).to_contain_text("per image")
    sign_in(sync_api, page, user, server.info["users"][user]["password"])


def sign_in(sync_api: Any, page: Any, user: str, password: str) -> None:
    """The page's own sign-in form: Cognito InitiateAuth against the stack's user pool."""
    form = page.locator("#sign-in")
    sync_api.expect(form).to_be_visible()
    form.get_by_label("User name").fill(user)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {user}")


def is_storage_post(server: Server) -> Callable[[Any], bool]:
    """Whether a response answers a form POST to S3 (not its preflight, an OPTIONS)."""
    endpoint = server.info["endpoint_url"]
    return lambda response: response.request.method == "POST" and response.url.startswith(endpoint)


def storage_posts(page: Any, server: Server) -> list[Any]:
    """The S3 answers to the page's form POSTs, as they arrive."""
    wanted = is_storage_post(server)
    answers: list[Any] = []
    page.on("response", lambda response: answers.append(response) if wanted(response) else None)
    return answers


def choose_file(page: Any, path: Path) -> Any:
    """Pick ``path`` in the file chooser that a click on the drop zone opens; its card."""
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").click()
    chooser.value.set_files(str(path))
    item = card(page, path.name)
    item.wait_for()
    return item


def settle(page: Any, item: Any, pending: tuple[str, ...], timeout_ms: float) -> str:
    """Wait until the card's state is no longer one of ``pending``; that state."""
    page.wait_for_function(
        "([el, pending]) => !pending.includes(el.dataset.state)",
        arg=[item.element_handle(), list(pending)],
        timeout=timeout_ms,
    )
    return str(item.get_attribute("data-state"))


# ---------------------------------------------------------------- the happy path


def test_upload_page_in_headless_chromium(
    chromium: tuple[str, Any],
    imgpipe_up: Server,
    tab: Tab,
    upload_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    sync_api, page = chromium[1], tab.page
    # A listener from the start turns file-chooser interception on before any click, so the
    # chooser the keyboard opens below is always reported (never a native dialog).
    choosers: list[Any] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    open_page(sync_api, page, imgpipe_up.url, imgpipe_up)
    open_chooser_with_keyboard(sync_api, page, choosers)

    page.set_input_files("#file-input", [str(path) for path in upload_files.values()])
    sync_api.expect(page.locator(".file-card")).to_have_count(3)
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
    for name in (upload_files["jpeg"].name, upload_files["heic"].name):
        check_renditions(card(page, name), name, renditions, imgpipe_up)

    fake = card(page, upload_files["fake"].name)
    assert fake.get_attribute("data-state") == "failed", fake.inner_text()
    assert fake.get_attribute("data-reason") == "unsupported_format"
    message = fake.locator(".file-status").inner_text()
    assert "Rejected" in message and "not an image" in message, message
    assert fake.locator(".rendition-table tbody tr").count() == 0
    assert fake.locator(".retry").is_hidden()
    assert tab.errors == [], tab.errors

    page.screenshot(path=str(tmp_path / "upload-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(tmp_path / "upload-page-mobile.png"), full_page=True)
    assert (tmp_path / "upload-page.png").stat().st_size > 10_000


def test_sign_in_upload_sign_out_and_the_image_is_out_of_reach(
    chromium: tuple[str, Any], imgpipe_up: Server, tab: Tab, small_png: Path
) -> None:
    """Signed out, the page shows the form and the API refuses; a wrong password is refused
    in words; signed in, an upload gets its renditions; signed out again, the page cannot
    read the image it just uploaded (401), and bob's token gets 404 for it."""
    sync_api, page = chromium[1], tab.page
    users = imgpipe_up.info["users"]
    page.goto(imgpipe_up.url)
    sync_api.expect(page.locator("#sign-in")).to_be_visible()
    assert status_of(page, "fetch('/uploads', {method: 'POST'})", tab, 401) == 401
    form = page.locator("#sign-in")
    form.get_by_label("User name").fill("alice")
    form.get_by_label("Password").fill("not-the-password-1A!")
    form.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#sign-in-error")).to_contain_text("Could not sign in")
    forget_errors(tab, 400)  # Cognito's refusal of the wrong password, as the console logs it
    sign_in(sync_api, page, "alice", users["alice"]["password"])
    item = choose_file(page, small_png)
    state = settle(page, item, ("queued", "uploading", "processing"), RESULT_TIMEOUT_MS)
    assert state == "done", item.locator(".file-status").inner_text()
    assert item.locator(".rendition-table tbody tr").count() > 0
    polled = page.evaluate(
        "[...performance.getEntriesByType('resource')].map(e => e.name)"
        ".filter(n => n.includes('/images/')).pop()"
    )
    assert polled, "the page never polled GET /images/..."
    as_alice = f"{{headers: {{Authorization: 'Bearer {users['alice']['token']}'}}}}"
    as_bob = f"{{headers: {{Authorization: 'Bearer {users['bob']['token']}'}}}}"
    assert status_of(page, f"fetch({polled!r}, {as_alice})", tab, 200) == 200
    page.get_by_role("button", name="Sign out").click()
    sync_api.expect(page.locator("#sign-in")).to_be_visible()
    sync_api.expect(page.locator("#account")).to_be_hidden()
    assert status_of(page, f"fetch({polled!r})", tab, 401) == 401
    assert status_of(page, f"fetch({polled!r}, {as_bob})", tab, 404) == 404
    assert tab.errors == [], tab.errors


def status_of(page: Any, call: str, tab: Tab, expected: int) -> int:
    """The status of a fetch made in the page; the console error of an expected refusal
    (the browser logs every 4xx) is dropped."""
    status = int(page.evaluate(f"{call}.then(r => r.status)"))
    if status == expected:
        forget_errors(tab, expected)
    return status


def forget_errors(tab: Tab, status: int) -> None:
    tab.errors[:] = [e for e in tab.errors if f"status of {status}" not in e]


def open_chooser_with_keyboard(sync_api: Any, page: Any, choosers: list[Any]) -> None:
    """The drop zone is a button reached with the keyboard; Enter opens the file picker."""
    dropzone = page.locator("#dropzone")
    sync_api.expect(page.locator("#sign-out")).to_be_focused()  # where signing in leaves it
    page.keyboard.press("Tab")  # then the drop zone
    sync_api.expect(dropzone).to_be_focused()
    assert dropzone.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 10
    while not choosers and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert choosers, "Enter on the focused drop zone opened no file chooser"
    assert choosers[0].is_multiple()
    assert choosers[0].element.get_attribute("id") == "file-input"


def check_renditions(item: Any, name: str, renditions: list[str], server: Server) -> None:
    """A card that is done: one table row and link per rendition, and the thumbnail shown."""
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
    # The ThumbHash stood in until the thumbnail loaded, then gave way to it.
    assert item.locator(".file-preview").get_attribute("data-placeholder") == "replaced"


def test_page_works_from_localhost(
    chromium: tuple[str, Any], imgpipe_up: Server, tab: Tab, small_png: Path
) -> None:
    """The other origin the stack allows: the page, its API calls and the S3 upload (CORS)."""
    origin = imgpipe_up.info["api_url"].replace("//127.0.0.1:", "//localhost:")
    assert origin != imgpipe_up.info["api_url"], origin
    open_page(chromium[1], tab.page, f"{origin}/", imgpipe_up)
    posts = storage_posts(tab.page, imgpipe_up)
    item = choose_file(tab.page, small_png)
    pending = ("queued", "uploading", "processing")
    state = settle(tab.page, item, pending, RESULT_TIMEOUT_MS)
    status = item.locator(".file-status").inner_text()
    assert state == "done", f"{status}\n{imgpipe_up.log()}"
    assert [post.status for post in posts] == [204], status
    assert posts[0].headers.get("access-control-allow-origin") == origin
    assert tab.errors == [], tab.errors


def test_the_page_polls_a_waiting_upload_without_console_errors(
    chromium: tuple[str, Any], imgpipe_up: Server, tab: Tab, tmp_path: Path
) -> None:
    """While the upload waits in the queue the API answers 200 PENDING, and the page says it
    waits; a 404 there would be logged as a failed resource load, which the tab records."""
    path = tmp_path / WAITS_IN_QUEUE
    photo_like(120, 80, seed=14).save(path, "PNG")
    open_page(chromium[1], tab.page, imgpipe_up.url, imgpipe_up)
    polled: list[int] = []
    tab.page.on("response", lambda r: polled.append(r.status) if "/images/" in r.url else None)
    item = choose_file(tab.page, path)
    sync_api = chromium[1]
    sync_api.expect(item.locator(".file-status")).to_have_text(
        "Uploaded. Waiting in the queue…", timeout=UPLOAD_TIMEOUT_MS
    )
    state = settle(tab.page, item, ("queued", "uploading", "processing"), RESULT_TIMEOUT_MS)
    assert state == "done", f"{item.inner_text()}\n{imgpipe_up.log()}"
    assert len(polled) >= 2 and set(polled) == {200}, polled
    assert tab.errors == [], tab.errors


# ---------------------------------------------------------------- S3's refusals, in words

# Run in the page: wraps window.fetch so that the page's own POST /uploads goes through two
# edits, /* ask */ on the JSON it sends and /* answer */ on the JSON it gets back (`extra` comes
# from the test). window.restoreFetch() undoes it.
ALTER_UPLOADS = """extra => {
  const send = window.fetch.bind(window);
  window.restoreFetch = () => { window.fetch = send; };
  window.fetch = async (input, init = {}) => {
    if (String(input) !== "/uploads") return send(input, init);
    const ask = JSON.parse(init.body);
    /* ask */
    const response = await send(input, { ...init, body: JSON.stringify(ask) });
    const answer = await response.json();
    /* answer */
    const headers = { "Content-Type": "application/json" };
    return new Response(JSON.stringify(answer), { status: response.status, headers });
  };
}"""
CHANGE_LENGTH_RANGE = """
const doc = JSON.parse(atob(answer.fields.policy));
doc.conditions = doc.conditions.map((c) =>
  Array.isArray(c) && c[0] === "content-length-range" ? [c[0], c[1], c[2] + 1000] : c);
answer.fields.policy = btoa(JSON.stringify(doc));
"""


@dataclass(frozen=True)
class Refusal:
    """How the test alters the /uploads exchange, and how S3 and then the page must answer."""

    ask: str  # JS editing `ask`, the JSON the page sends to /uploads
    answer: str  # JS editing `answer`, the JSON /uploads returns (`extra` from the test)
    status: int
    code: str
    words: Callable[[int], str]  # the card's status, given the file's size
    expired: bool = False  # `extra` is a POST the test signed with an expiry in the past


REFUSALS = {
    "larger-than-declared": Refusal(
        "ask.size -= 16;", "", 400, "EntityTooLarge",
        lambda n: f"The file is larger than declared ({n:,} bytes; "
        f"the upload allows {n - 16:,} bytes).",
    ),
    "smaller-than-declared": Refusal(
        "ask.size += 16;", "", 400, "EntityTooSmall",
        lambda n: f"The file is smaller than declared ({n:,} bytes; "
        f"the upload needs {n + 16:,} bytes).",
    ),
    "other-type-than-declared": Refusal(
        "", 'answer.fields["Content-Type"] = "image/jpeg";', 403, "AccessDenied",
        lambda n: "The file's type does not match the one declared (image/png).",
    ),
    "expired-policy": Refusal(
        "", "Object.assign(answer, extra);", 403, "AccessDenied",
        lambda n: "The upload link expired; try again.", expired=True,
    ),
    "tampered-policy": Refusal(
        "", CHANGE_LENGTH_RANGE, 403, "SignatureDoesNotMatch",
        lambda n: "The upload was refused: the signed policy was altered (SignatureDoesNotMatch).",
    ),
}  # fmt: skip


def expired_upload(server: Server, path: Path, content_type: str) -> dict[str, Any]:
    """A presigned POST for exactly this file, signed with the operator's keys, already expired
    (S3 checks the signature first, so only the expiry can fail)."""
    bucket = server.info["raw_bucket"]
    key = f"uploads/{uuid.uuid4().hex}/{path.name}"
    size = path.stat().st_size
    post = server.admin_s3().generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
        ExpiresIn=-60,
    )
    return {"url": post["url"], "fields": post["fields"], "key": key, "imageId": f"{bucket}/{key}"}


def s3_code(response: Any) -> str:
    try:
        return ElementTree.fromstring(response.text()).findtext("Code") or ""
    except ElementTree.ParseError:
        return ""


@pytest.mark.parametrize("name", list(REFUSALS))
def test_storage_refusal_is_shown_in_words(
    chromium: tuple[str, Any], imgpipe_up: Server, tab: Tab, small_png: Path, name: str
) -> None:
    case, page = REFUSALS[name], tab.page
    open_page(chromium[1], page, imgpipe_up.url, imgpipe_up)
    extra = expired_upload(imgpipe_up, small_png, "image/png") if case.expired else None
    script = ALTER_UPLOADS.replace("/* ask */", case.ask).replace("/* answer */", case.answer)
    page.evaluate(script, extra)
    posts = storage_posts(page, imgpipe_up)
    item = choose_file(page, small_png)

    state = settle(page, item, ("queued", "uploading"), UPLOAD_TIMEOUT_MS)
    status = item.locator(".file-status").inner_text()
    answers = [(post.status, s3_code(post)) for post in posts]
    assert state == "error", f"not refused: {status!r}; S3 answered {answers}"
    assert answers == [(case.status, case.code)], f"{status!r}; S3 answered {answers}"
    assert status == case.words(small_png.stat().st_size)
    assert item.locator(".retry").is_visible()

    # Retry asks for a fresh, unaltered link, and that upload goes through.
    page.evaluate("window.restoreFetch()")
    with page.expect_response(is_storage_post(imgpipe_up), timeout=UPLOAD_TIMEOUT_MS):
        item.locator(".retry").click()
    state = settle(page, item, ("queued", "uploading"), UPLOAD_TIMEOUT_MS)
    assert state in ("processing", "done"), item.locator(".file-status").inner_text()
    assert [post.status for post in posts] == [case.status, 204]
    assert tab.page_errors() == [], tab.errors
