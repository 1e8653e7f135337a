"""Registries: one per extensible axis (models, datasets, tasks, schedules, averaging variants).

Entries are added with decorators, the same ones plugins use::

    from workbench.registry import MODELS

    @MODELS.register("my_net", help="A two-layer perceptron")
    def my_net(info, hidden: int = 64):
        ...

A name clash raises at import time (loud, never a silent override).
``tests/test_registries.py`` enumerates every registry (:func:`registries`), plugins'
entries included, so a new entry is exercised without a new test.
"""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class RegistryError(KeyError):
    """An unknown name was asked of a registry; the message lists the choices."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Callable[..., Any]
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"

    def options(self) -> dict[str, inspect.Parameter]:
        """Keyword options the factory accepts (everything after the first argument)."""
        params = list(inspect.signature(self.obj).parameters.values())
        return {
            p.name: p
            for p in params[1:]
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._source = "builtin"

    def register(self, name: str, *, help: str = "", **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered "
                    f"(by {self._entries[name].source}); pick another name"
                )
            doc = help or (inspect.getdoc(obj) or "").split("\n")[0]
            self._entries[name] = Entry(name, obj, doc, dict(meta), self._source)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)


MODELS: Registry = Registry("model")
DATASETS: Registry = Registry("dataset")
SCHEDULES: Registry = Registry("schedule")
AVERAGERS: Registry = Registry("averaging variant")
TASKS: Registry = Registry("task")


def registries() -> list[Registry]:
    """Every registry, in a fixed order (plugins snapshot them; the tests enumerate them)."""
    return [r for r in globals().values() if isinstance(r, Registry)]

# Modules whose decorators fill the registries. Listed here, not imported by the
# packages' __init__, so importing one module never drags in the others.
BUILTIN_MODULES = (
    "workbench.engine.schedules",
    "workbench.engine.plan",
    "workbench.data.image",
    "workbench.data.imagenet",
    "workbench.data.graph",
    "workbench.models.cnn",
    "workbench.models.vgg",
    "workbench.models.preresnet",
    "workbench.models.wide_resnet",
    "workbench.models.torchvision_zoo",
    "workbench.models.gnn",
    "workbench.tasks.image",
    "workbench.tasks.node",
    "workbench.tasks.graph",
)

_loaded = False  # every built-in module and plugin imported
_started = False
_loading = threading.RLock()


def load_builtins() -> None:
    """Import the built-in modules, then the plugins (idempotent and thread-safe: a second
    thread waits until the first has finished instead of seeing half-filled registries,
    e.g. the terminal app validating a form while a worker loads the schema)."""
    global _loaded, _started
    if _loaded:
        return
    with _loading:
        if _loaded or _started:  # _started: a re-entrant call from the importing thread
            return
        _started = True
        try:
            _import_builtins()
        finally:
            _loaded = True


def _import_builtins() -> None:
    from importlib import import_module
    from importlib.util import find_spec

    for name in BUILTIN_MODULES:
        if find_spec(name) is not None:  # modules of later issues may not exist yet
            import_module(name)
    from workbench import plugins

    plugins.load_plugins()
