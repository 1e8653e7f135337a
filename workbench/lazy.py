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


# Optional extras: the module each needs, and the extra that installs it.
EXTRAS = {
    "textual": "tui",
    "ipywidgets": "notebook",
    "torch_geometric": "graph",
    "transformers": "text",
    "ray": "ray",
}


def missing(module: str, what: str) -> str:
    """One line saying which extra installs ``module``, or "" when it is importable (found
    without importing it, so a spec check stays cheap)."""
    from importlib.util import find_spec

    top = module.split(".")[0]
    try:
        if find_spec(top) is not None:
            return ""
    except (ImportError, ValueError):
        pass
    extra = EXTRAS.get(top)
    hint = f": pip install 'swa-workbench[{extra}]'" if extra else ""
    return f"{what} needs {top}, which is not installed{hint}"

