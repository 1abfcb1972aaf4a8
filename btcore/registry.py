"""A name -> plug-in registry with lazy imports and entry points (fsspec style).

Entries are objects or ``"module:attribute"`` strings imported on first use;
third-party packages add theirs through an entry-point group, read once.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import MappingProxyType


class Registry:
    """Plug-ins of one kind (``kind`` names them in error messages)."""

    def __init__(self, kind: str, plural: str, builtins: dict, entry_point_group: str):
        self.kind = kind
        self.plural = plural
        self._entries = dict(builtins)
        self._group = entry_point_group
        self._entry_points_loaded = False

    def _load_entry_points(self) -> None:
        if not self._entry_points_loaded:
            self._entry_points_loaded = True
            for ep in entry_points(group=self._group):
                self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._load_entry_points()
        return sorted(self._entries)

    def view(self) -> MappingProxyType:
        """Read-only name -> object or not-yet-imported dotted path."""
        self._load_entry_points()
        return MappingProxyType(self._entries)

    def add(self, name: str, entry, clobber: bool = False) -> None:
        self._load_entry_points()
        if name in self._entries and not clobber:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass clobber=True "
                             "to replace it")
        self._entries[name] = entry

    def load(self, name: str, hint: str = ""):
        """The object registered as ``name``, importing it if needed.

        Raises
        ------
        ValueError
            Unknown name; the message lists the valid names.
        """
        self._load_entry_points()
        try:
            entry = self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.plural} are "
                             f"{self.names()}{hint}") from None
        if isinstance(entry, str):
            module_name, _, attribute = entry.partition(":")
            try:
                entry = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"{self.kind} {name!r} is registered as {entry!r}, which "
                                 f"cannot be loaded ({type(err).__name__}: {err}); reinstall "
                                 "the package that provides it") from err
            self._entries[name] = entry
        return entry
