"""GitHub: the catalog the broker enforces (``catalog``) and the agent's tools (``toolkit``).

Import :class:`~vertex_tools.providers.github.toolkit.GitHubToolkit` from
``vertex_tools.providers.github.toolkit``: this package stays free of LangChain,
because the broker imports the catalog through it.
"""
