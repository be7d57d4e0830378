"""The package's public surface: complete, documented, and LangChain-free for the broker."""

from __future__ import annotations

import subprocess
import sys

import vertex_tools


def test_all_names_import_and_are_documented() -> None:
    assert sorted(vertex_tools.__all__) == vertex_tools.__all__
    for name in vertex_tools.__all__:
        obj = getattr(vertex_tools, name)
        assert (getattr(obj, "__doc__", None) or "").strip(), f"{name} has no docstring"


def test_the_broker_never_imports_langchain() -> None:
    """The broker process imports vertex_tools and the broker; LangChain (0.6 s to import)
    must stay out of it (DESIGN.md)."""
    code = (
        "import sys, vertex_tools, vertex_tools.broker.server, vertex_tools.cli; "
        "from vertex_tools.providers import CATALOG_PROVIDERS, get_catalog; "
        "[get_catalog(p) for p in CATALOG_PROVIDERS if __import__('importlib').util.find_spec("
        "f'vertex_tools.providers.{p}.catalog')]; "
        "print(sorted(m for m in sys.modules if m.startswith('langchain')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
