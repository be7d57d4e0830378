"""The official SDKs are the agent's business: the broker neither depends on nor imports them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

SDKS = ("stripe", "github", "githubkit", "supabase", "postgrest")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_sdks_are_dev_dependencies_only() -> None:
    project = tomllib.loads(PYPROJECT.read_text("utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    dev = " ".join(project["optional-dependencies"]["dev"]).lower()
    for name in ("stripe", "pygithub", "githubkit", "supabase", "postgrest"):
        assert name not in runtime
        assert name in dev


def test_the_broker_never_imports_an_sdk() -> None:
    code = (
        "import sys, vertex_tools, vertex_tools.broker.server, vertex_tools.cli; "
        "from vertex_tools.providers import CATALOG_PROVIDERS, get_catalog; "
        "[get_catalog(p) for p in CATALOG_PROVIDERS]; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
