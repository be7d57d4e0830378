"""The README's "Official SDKs" snippets run as written, each against its stand-in
behind a real broker (only ``BROKER`` and ``token`` are supplied; githubkit is
pinned to the stand-in's REST version)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.sdk.conftest import SdkDeployment

README = Path(__file__).resolve().parents[2] / "README.md"

# supabase-py passes postgrest-py options that postgrest-py itself deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning"
)


def _snippets() -> list[str]:
    text = README.read_text("utf-8")
    section = text.split("## Official SDKs", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the Official SDKs section has no python block"
    chunks = [c.strip() for c in match.group(1).split("\n\n") if c.strip()]
    assert chunks[0].startswith("BROKER = ")
    return chunks[1:]


@pytest.mark.parametrize(
    ("index", "provider", "grant"),
    [
        (0, "stripe", "sdk-support"),
        (1, "github", "sdk-triage"),
        (2, "github", "sdk-triage"),
        (3, "supabase", "sdk-reporting"),
    ],
    ids=["stripe", "pygithub", "githubkit", "supabase"],
)
def test_readme_snippet_runs(
    request: pytest.FixtureRequest, index: int, provider: str, grant: str
) -> None:
    deployment: SdkDeployment = request.getfixturevalue(f"{provider}_sdk").deployment
    snippet = _snippets()[index]
    if provider == "github":
        # githubkit defaults to the newest REST version; the stand-in speaks the one its
        # pinned OpenAPI description names.
        snippet = snippet.replace("kit.rest.", 'kit.rest("2022-11-28").')
    assert deployment.broker.url is not None
    namespace = {"BROKER": f"{deployment.broker.url}/proxy", "token": deployment.token(grant)}
    exec(compile(snippet, f"README.md ({provider})", "exec"), namespace)  # noqa: S102
