"""``python -m vertex_tools`` is the ``vertex`` command."""

from vertex_tools.cli import main

main()
