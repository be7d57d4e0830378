"""Record this project's replayed sessions: ``python -m tests.sessions.record``.

Each session is one agent run of the scenario corpus (tests/scenarios: LangChain's
agent loop, the scripted model, the real broker and stand-ins), recorded through
:class:`vertex_tools.replay.Recorder`. Re-record on purpose after a change that
is meant to change decisions; CI replays the files (tests/sessions/test_sessions.py)
under ``policy.toml`` here, the scenario policy with the stand-ins' addresses fixed
(replay never contacts an upstream, so the addresses do not matter).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from langchain_core.callbacks import BaseCallbackHandler

from tests.scenarios.agent import run_agent
from tests.scenarios.corpus import SCENARIOS, SYSTEM
from tests.scenarios.world import World, human, policy_text, start_world
from vertex_tools import GitHubToolkit, StripeToolkit, SupabaseToolkit
from vertex_tools.admin import Admin
from vertex_tools.client import BrokerClient
from vertex_tools.policy import load_policy
from vertex_tools.replay import Recorder, audit_lookups
from vertex_tools.taint import ProvenanceHandler

HERE = Path(__file__).parent
POLICY = HERE / "policy.toml"
FIXED_URLS = ("http://127.0.0.1:12111", "http://127.0.0.1:12112", "http://127.0.0.1:12113")


@dataclass(frozen=True)
class Recording:
    """One session file: a corpus scenario, under which grants, decided how."""

    file: str
    scenario: str
    grants: tuple[str, str, str] | None = None
    human: bool | None = None


RECORDINGS = [
    Recording("stripe-injection-refund-denied", "stripe-customer-description-refund"),
    Recording("stripe-refund-the-user-asked-for", "stripe-refund-the-user-asked-for"),
    Recording("stripe-payment-approved", "web-invoice-paid-after-approval"),
    Recording("github-injection-collaborator-denied", "github-issue-body-adds-collaborator"),
    Recording(
        "github-injection-held-and-denied-by-human",
        "github-issue-body-adds-collaborator",
        grants=("stripe-agent", "github-approve", "supabase-agent"),
        human=False,
    ),
    Recording("github-triage-comment", "github-triage-comment"),
    Recording("supabase-injection-payout-denied", "supabase-row-redirects-payout"),
    Recording("supabase-payout-approved", "pay-the-bill-in-this-file"),
]


class _BrokerHuman(BaseCallbackHandler):
    """When the broker holds a request, a human decides it before the agent retries."""

    raise_error = True
    run_inline = True

    def __init__(self, world: World, decision: bool) -> None:
        self.world, self.decision = world, decision

    def on_tool_end(self, output: object, **kwargs: object) -> None:
        text = str(getattr(output, "content", output))
        if "held for a human's approval as ap_" in text:
            self.world.approve_all_pending(self.decision)


def _client(world: World, recorder: Recorder, grant: str) -> BrokerClient:
    with Admin(world.home, world.env) as admin:
        issued = admin.token_issue(load_policy(world.home.policy), grant, "1h")
    assert world.broker.url is not None
    client = BrokerClient(world.broker.url, token=issued.token, transport=recorder.transport(grant))
    world.clients.append(client)
    return client


def record(world: World, recording: Recording, out: Path) -> Path:
    """Play one scenario and record it to ``out/<file>.session.jsonl``."""
    scenario = next(s for s in SCENARIOS if s.name == recording.scenario)
    decision = scenario.human if recording.human is None else recording.human
    stripe, github, supabase = recording.grants or scenario.grants
    context = scenario.setup(world)
    path = out / f"{recording.file}.session.jsonl"
    note = f"scenario {scenario.name} ({scenario.kind}, {scenario.vector}); grants " + ", ".join(
        (stripe, github, supabase)
    )
    with Recorder(path, note=note, lookups=audit_lookups(world.home)) as recorder:
        tools = [
            *StripeToolkit(client=_client(world, recorder, stripe)).get_tools(),
            *GitHubToolkit(client=_client(world, recorder, github)).get_tools(),
            *SupabaseToolkit(client=_client(world, recorder, supabase)).get_tools(),
            *world.generic_tools(approver=human(decision), email_on_taint=scenario.email_on_taint),
        ]
        run_agent(
            tools,
            scenario.script(context),
            user=scenario.user.format(**context),
            system=SYSTEM,
            handler=ProvenanceHandler(),
            extra_callbacks=[recorder, _BrokerHuman(world, decision)],
        )
    return path


def main(argv: list[str]) -> int:
    """Record every session (or the named ones) into tests/sessions/."""
    wanted = set(argv)
    with tempfile.TemporaryDirectory(prefix="vertex-record-") as tmp:
        for world in start_world(Path(tmp)):
            for recording in RECORDINGS:
                if wanted and recording.file not in wanted:
                    continue
                print(f"recorded {record(world, recording, HERE)}")
    POLICY.write_text(policy_text(*FIXED_URLS), encoding="utf-8")
    print(f"wrote {POLICY}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
