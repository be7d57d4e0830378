"""The broker's start-up path imports only what serving needs (issue 9: start to first
served request within 0.5 s, and imports were most of it).

Checked by module, never by timing: a fresh interpreter imports what ``vertex serve``
imports, starts the runtime on a real data directory (state, vault and audit log
opened, the start recorded) and stops it; then none of the modules below may be loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import Deployment

# Module -> why the broker must not pay for it at start-up.
HEAVY = {
    "langchain_core": "the agent side's toolkits (about 0.6 s)",
    "httpx": "the client's transport, not the broker's (about 0.1 s)",
    "sqlite_utils": "only needed to create a new audit log (0.1 s, and it imports numpy)",
    "numpy": "imported by sqlite_utils when installed",
    "pandas": "imported by sqlite_utils when installed",
}

SCRIPT = """
import asyncio, json, sys
from pathlib import Path

import vertex_tools.cli.main  # what `python -m vertex_tools` imports
from vertex_tools.broker.runtime import BrokerConfig, Runtime
from vertex_tools.broker.server import serve  # what `vertex serve` imports
from vertex_tools.home import Home

home = Home(Path(sys.argv[1]))
env = json.loads(sys.argv[2])


async def main() -> None:
    runtime = Runtime(BrokerConfig(home=home, policy_path=home.policy, environ=env))
    await runtime.start()
    await runtime.stop()


asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[3:])))
"""


def test_starting_the_broker_imports_none_of_the_heavy_modules(deployment: Deployment) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(deployment.home.root),
            json.dumps(deployment.env),
            *HEAVY,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], {name.split(".")[0]: HEAVY[name.split(".")[0]] for name in loaded}
