"""The public surface: complete __all__, documented names."""

from __future__ import annotations

import inspect
import types

import vertex_tools.audit as audit


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(audit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(audit.__all__)


def test_every_public_name_is_documented() -> None:
    for name in audit.__all__:
        value = getattr(audit, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
            for attr, member in vars(value).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    assert inspect.getdoc(member), f"{name}.{attr}"
