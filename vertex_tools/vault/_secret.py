"""Values that leave the vault: the secret wrapper and entry metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

__all__ = ["SecretValue", "VaultEntryInfo"]


@dataclass(frozen=True, eq=False)
class SecretValue:
    """A decrypted secret that does not show itself.

    ``repr`` and ``str`` are ``SecretValue('***')``; :meth:`reveal` returns the text.
    It cannot be pickled, so it cannot leak through a cache, queue or crash dump
    that pickles its arguments.
    """

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """Return the plaintext secret. Call it only where the secret is used."""
        return self._value

    def __repr__(self) -> str:
        """Hide the value."""
        return "SecretValue('***')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        """Refuse pickling."""
        raise TypeError("SecretValue cannot be pickled")


@dataclass(frozen=True)
class VaultEntryInfo:
    """What the vault says about an entry without opening it: never the value.

    ``created`` and ``updated`` are timezone-aware UTC datetimes, whole seconds;
    ``key_id`` names the master key the entry is sealed with.
    """

    name: str
    provider: str
    created: datetime
    updated: datetime
    key_id: str
