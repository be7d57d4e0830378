"""langchain_tests' standard suites for every GitHub tool.

The unit suite builds each tool with a client of a broker that is never called;
the integration suite calls each tool through a real broker in front of the
stand-in, with a token of the ``maintainer`` grant. One class per tool and suite
is generated below (``TestGetIssueToolUnit``, ``TestGetIssueToolIntegration``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from tests.providers.github.conftest import GitHubDeployment
from tests.providers.github.standard_examples import EXAMPLES
from vertex_tools.client import BrokerClient
from vertex_tools.providers.github.toolkit import GitHubToolkit
from vertex_tools.tokens import mint_token


class _Clients:
    """The clients the generated classes build their tools with (properties take no fixtures)."""

    offline = BrokerClient(
        "http://127.0.0.1:9", token=mint_token("maintainer", now=time.time(), ttl=3600).token
    )
    live: BrokerClient | None = None


@pytest.fixture(scope="module", autouse=True)
def _live_client(github: GitHubDeployment) -> Iterator[None]:
    _Clients.live = github.client("maintainer")
    yield
    _Clients.live = None


class _Unit(ToolsUnitTests):
    tool_class: type[BaseTool]

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"client": _Clients.offline, "upstream": "github"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return EXAMPLES[str(self.tool_class.model_fields["name"].default)]


class _Integration(ToolsIntegrationTests):
    tool_class: type[BaseTool]

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        assert _Clients.live is not None
        return {"client": _Clients.live, "upstream": "github"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return EXAMPLES[str(self.tool_class.model_fields["name"].default)]


for _cls in GitHubToolkit.tool_classes:
    _base = _cls.__name__
    globals()[f"Test{_base}Unit"] = type(f"Test{_base}Unit", (_Unit,), {"tool_class": _cls})
    globals()[f"Test{_base}Integration"] = type(
        f"Test{_base}Integration", (_Integration,), {"tool_class": _cls}
    )
