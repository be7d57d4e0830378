"""Provider catalogs (broker side) and LangChain toolkits (agent side).

Catalogs are imported by the broker and never import LangChain; toolkits
live in ``<provider>/toolkit.py`` and are only imported by agent code.
"""

from __future__ import annotations

import importlib

from vertex_tools.errors import ConfigError
from vertex_tools.providers.catalog import Catalog

__all__ = ["CATALOG_PROVIDERS", "get_catalog"]

CATALOG_PROVIDERS = ("stripe", "github", "supabase")
_cache: dict[str, Catalog] = {}


def get_catalog(provider: str) -> Catalog:
    """The catalog of ``provider``; :class:`ConfigError` if there is none."""
    cached = _cache.get(provider)
    if cached is not None:
        return cached
    if provider not in CATALOG_PROVIDERS:
        raise ConfigError(f"no catalog for provider {provider!r} (known: {CATALOG_PROVIDERS})")
    try:
        module = importlib.import_module(f"vertex_tools.providers.{provider}.catalog")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the {provider} catalog is not installed: {exc.name}") from exc
    catalog = module.CATALOG
    if not isinstance(catalog, Catalog):
        raise ConfigError(f"vertex_tools.providers.{provider}.catalog.CATALOG is not a Catalog")
    _cache[provider] = catalog
    return catalog
