"""Lazy package exports: a package's public names import their module on first use, so
importing the package stays cheap (the terminal app's first frame, a notebook's import)."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) for ``package``: ``exports`` maps each public
    name to the submodule defining it. A submodule must not share a name with an export
    (importing it would set the package attribute to the module)."""

    def __getattr__(name: str) -> Any:
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{mod}"), name)

    return __getattr__
