"""The ``vertex`` command line."""

from vertex_tools.cli.main import cli, main

__all__ = ["cli", "main"]
