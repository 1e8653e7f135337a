"""Plugin discovery: modules in a plugins folder and installed entry points.

A plugin registers models, datasets, tasks, schedules or averaging variants with
the same decorators the built-ins use. Sources, in order:

* every ``*.py`` module and package in the folders named by ``WORKBENCH_PLUGINS``
  (``os.pathsep``-separated), else the repository's ``plugins/`` folder;
* installed distributions declaring the entry-point group ``workbench.plugins``.

A plugin that fails to import is recorded with its error (``workbench plugins``
lists it) and never stops the app. Entries it registered before failing are
removed again, so a half-loaded plugin leaves nothing behind.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from workbench import registry

GROUP = "workbench.plugins"
REPO_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


@dataclass
class PluginStatus:
    name: str
    source: str
    ok: bool
    error: str = ""
    registered: tuple[str, ...] = ()


STATUS: list[PluginStatus] = []


def plugin_dirs() -> list[Path]:
    env = os.environ.get("WORKBENCH_PLUGINS")
    if env is not None:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [REPO_PLUGINS]


def _registries() -> list[registry.Registry]:
    return [registry.MODELS, registry.DATASETS, registry.TASKS, registry.SCHEDULES, registry.AVERAGERS]


def _load_one(name: str, source: str, loader) -> None:
    before = {id(r): set(r.names()) for r in _registries()}
    for r in _registries():
        r._source = f"plugin {name}"
    try:
        loader()
        added = tuple(f"{r.kind}:{n}" for r in _registries() for n in sorted(set(r.names()) - before[id(r)]))
        STATUS.append(PluginStatus(name, source, True, registered=added))
    except BaseException as err:  # noqa: BLE001 - a broken plugin must never stop the app
        if isinstance(err, KeyboardInterrupt):
            raise
        for r in _registries():
            for n in set(r.names()) - before[id(r)]:
                r.unregister(n)
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        STATUS.append(PluginStatus(name, source, False, error=last))
    finally:
        for r in _registries():
            r._source = "builtin"


def _load_path(path: Path) -> None:
    mod_name = f"workbench_plugin_{path.stem}"
    target = path / "__init__.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(mod_name, target,
                                                  submodule_search_locations=[str(path)] if path.is_dir() else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise


def load_plugins() -> list[PluginStatus]:
    for folder in plugin_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if (path.suffix == ".py" and path.is_file()) or (path.is_dir() and (path / "__init__.py").exists()):
                _load_one(path.stem, str(path), lambda p=path: _load_path(p))
    for ep in entry_points(group=GROUP):
        _load_one(ep.name, f"entry point {ep.value}", ep.load)
    return STATUS
