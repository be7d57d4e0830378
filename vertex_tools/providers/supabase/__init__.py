"""Supabase (PostgREST): the catalog the broker enforces and the agent's toolkit.

``catalog`` is imported by the broker and imports no LangChain; import
:class:`~vertex_tools.providers.supabase.toolkit.SupabaseToolkit` from
``vertex_tools.providers.supabase.toolkit`` on the agent side.
"""

__all__: list[str] = []
