"""A real broker (its own data directory, the echo stand-in upstream) and operators
signed in the way a person is: ``vertex console`` prints a link, the link is opened,
"Sign in" is pressed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Deployment
from vertex_tools.local import LocalBroker

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


@pytest.fixture
def operator(deployment: Deployment, broker: LocalBroker) -> Iterator[httpx.Client]:
    http = sign_in(deployment, broker)
    yield http
    http.close()
