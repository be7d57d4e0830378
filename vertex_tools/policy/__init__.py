"""Policy: the TOML file, its models, and the engine that decides."""

from vertex_tools.policy.loader import LoadedPolicy, load_policy, parse_policy
from vertex_tools.policy.models import Grant, Policy, Upstream

__all__ = ["Grant", "LoadedPolicy", "Policy", "Upstream", "load_policy", "parse_policy"]
