"""A real broker (its own data directory, the echo stand-in upstream) and operators
signed in the way a person is: ``vertex console`` prints a link, the link is opened,
"Sign in" is pressed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import Deployment
from vertex_tools.local import LocalBroker

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ORIGIN_HEADERS = {"Sec-Fetch-Site": "same-origin"}


def vertex(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``vertex`` CLI on the deployment's data directory."""
    return subprocess.run(
        [sys.executable, "-m", "vertex_tools", "--home", str(deployment.home.root), *args],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def login_link(deployment: Deployment, broker: LocalBroker, *extra: str) -> str:
    """The link ``vertex console --url ...`` prints."""
    assert broker.url is not None
    done = vertex(deployment, "console", "--url", broker.url, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["url"])


def code_of(link: str) -> str:
    found = re.search(r"code=([A-Za-z0-9_-]+)", link)
    assert found is not None, link
    return found.group(1)


def client(broker: LocalBroker) -> httpx.Client:
    assert broker.url is not None
    return httpx.Client(base_url=broker.url, trust_env=False, timeout=10)


def post(http: httpx.Client, path: str, data: dict[str, str], **kw: object) -> httpx.Response:
    """A form POST as the console's own page sends it (same origin)."""
    headers = {"Origin": str(http.base_url).rstrip("/"), **ORIGIN_HEADERS}
    return http.post(path, data=data, headers=headers, **kw)  # type: ignore[arg-type]


def sign_in(deployment: Deployment, broker: LocalBroker) -> httpx.Client:
    """An HTTP client with a console session."""
    http = client(broker)
    answer = post(http, "/console/login", {"code": code_of(login_link(deployment, broker))})
    assert answer.status_code == 303, answer.text
    assert http.cookies.get("vertex_console")
    return http


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def once_of(page: str) -> str:
    """The issue form's one-time field (each rendering of the form issues once)."""
    found = re.search(r'name="once" value="([A-Za-z0-9_-]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.fixture
def operator(deployment: Deployment, broker: LocalBroker) -> Iterator[httpx.Client]:
    http = sign_in(deployment, broker)
    yield http
    http.close()


# browser ----------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
"""Where the browser tests save a PNG of each page (git-ignored)."""


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's chromium, headless, on a fresh profile, driven by playwright (one per
    module). Missing browser: the tests fail (they are not skipped), naming the fix."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium; "
            "run scripts/setup as root (it installs chromium and fonts-dejavu-core)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run scripts/setup")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(browser_context: BrowserContext) -> Page:
    """One tab for the module's tests, which follow on from each other like a session."""
    return browser_context.new_page()


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the screenshots are."""
    if SCREENSHOTS.is_dir():
        shots = sorted(SCREENSHOTS.glob("*.png"))
        if shots:
            terminalreporter.write_line(
                f"console screenshots ({len(shots)}): {SCREENSHOTS}/"
                + " ".join(p.name for p in shots)
            )
