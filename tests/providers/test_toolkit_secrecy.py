"""No tool of any toolkit carries the token into what LangChain shows or records:
schema, repr, serialisation, callback traces, or the error a failed call raises."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tools import BaseTool

from vertex_tools import (
    BrokerClient,
    BrokerUnavailable,
    GitHubToolkit,
    StripeToolkit,
    SupabaseToolkit,
)
from vertex_tools.tokens import mint_token

TOKEN = mint_token("g", now=0, ttl=10**10).token
SECRET_PART = TOKEN.split(".")[2]


class Recorder(BaseCallbackHandler):
    """Keeps the text of every callback LangChain makes for a tool run."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.seen.append(repr(serialized) + input_str + repr(kwargs))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.seen.append(repr(output) + repr(kwargs))

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
    ) -> None:
        self.seen.append(repr(error) + str(error) + repr(kw))


def all_tools() -> list[BaseTool]:
    # Port 9 on loopback: nothing listens, so every call fails at the transport.
    client = BrokerClient("http://127.0.0.1:9", token=TOKEN, timeout=2)
    tools: list[BaseTool] = []
    for toolkit in (StripeToolkit, GitHubToolkit, SupabaseToolkit):
        tools += toolkit(client=client).get_tools()
    return tools


@pytest.mark.parametrize("tool", all_tools(), ids=lambda t: t.name)
def test_the_token_is_nowhere_in_a_tool(tool: BaseTool) -> None:
    shown = [
        repr(tool),
        str(tool),
        str(tool.args),
        str(tool.tool_call_schema.model_json_schema()),  # type: ignore[union-attr]
        str(tool.model_dump()),
        tool.model_dump_json(),
        str(tool.get_input_schema().model_json_schema()),  # type: ignore[union-attr]
    ]
    for text in shown:
        assert SECRET_PART not in text
        assert "tk_" not in text


CALLS = {
    "stripe_list_customers": {},
    "github_list_issues": {"repo": "acme/website"},
    "supabase_select_rows": {"table": "orders"},
}


@pytest.mark.parametrize(("name", "args"), list(CALLS.items()))
def test_the_token_is_not_in_traces_or_transport_errors(name: str, args: dict[str, Any]) -> None:
    tool = next(t for t in all_tools() if t.name == name)
    recorder = Recorder()
    with pytest.raises(BrokerUnavailable) as info:
        tool.invoke(args, config={"callbacks": [recorder]})
    assert len(recorder.seen) >= 2, "the start and the error were not both recorded"
    for text in [*recorder.seen, str(info.value), repr(info.value)]:
        assert SECRET_PART not in text
