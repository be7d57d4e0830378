"""The README's "Official SDKs" snippets run as written, each against its stand-in
behind a real broker: only the broker's address and ``token`` are supplied, and
githubkit is pinned to the stand-in's REST version."""

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
    section = README.read_text("utf-8").split("## Official SDKs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


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
    snippets = _snippets()
    assert len(snippets) == 4, "one snippet per SDK"
    snippet = snippets[index].replace("http://127.0.0.1:8750", str(deployment.broker.url))
    if provider == "github":
        # githubkit defaults to the newest REST version; the stand-in speaks the one its
        # pinned OpenAPI description names.
        snippet = snippet.replace("kit.rest.", 'kit.rest("2022-11-28").')
    namespace = {"token": deployment.token(grant)}
    exec(compile(snippet, f"README.md ({provider})", "exec"), namespace)  # noqa: S102
