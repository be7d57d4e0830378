"""A throwaway data directory for a benchmark: the demo policy pointed at a stand-in,
its key vaulted, and a token for the echo-writer grant."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vertex_tools.admin import Admin
from vertex_tools.home import Home, init_home, policy_template
from vertex_tools.policy import load_policy


def bench_home(
    upstream_url: str, secret: str, *, rate: str = "5/second"
) -> tuple[Home, dict[str, str], str]:
    """(home, environment for the broker, token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    home = Home(Path(tempfile.mkdtemp(prefix="vertex-bench-")))
    init_home(home, environ=env)
    text = policy_template().replace("http://127.0.0.1:9000", upstream_url)
    home.policy.write_text(text.replace('rate = "5/second"', f'rate = "{rate}"'))
    with Admin(home, env) as admin:
        admin.vault_put("echo-key", "http", secret)
        token = admin.token_issue(load_policy(home.policy), "echo-writer", "1h").token
    return home, env, token
