"""Plugin discovery: modules in a plugins folder and installed entry points.

A plugin registers models, datasets, tasks, schedules or averaging variants with
the same decorators the built-ins use (see ``plugins/README.md``). Sources, in
order:

* every ``*.py`` module and every package (a folder with ``__init__.py``) in the
  folders named by ``WORKBENCH_PLUGINS`` (``os.pathsep``-separated); without it,
  no folder is searched (never the current folder, never a path next to the
  package: what loads must not depend on where a command runs). Names starting
  with ``_`` or ``.`` are skipped. A folder plugin is imported as
  ``workbench_plugin_<name>``, so its own relative imports (``from . import
  data``) work;
* installed distributions declaring the entry-point group ``workbench.plugins``.
  Loading the entry point imports its module; when it names a callable
  (``pkg.plugin:register``), that callable is then called with no arguments.
  The repository's own ``plugins/mrpc_roberta`` is declared this way by
  ``pyproject.toml``, so an editable and a plain ``pip install .`` both find it.

Robustness contract: a plugin that raises at import (including a syntax error
or a name that clashes with an existing entry) is recorded as failed with a
one-line error (``workbench plugins`` lists it) and never stops the app. The
registries are restored to their state before that plugin ran, so a
half-loaded plugin leaves nothing behind, and the remaining plugins load as
usual.

Pitfalls:

* Loading happens once per process (``registry.load_builtins()`` calls
  :func:`load_plugins`). Re-running a plugin's decorators needs
  :func:`reload_plugins`, which first unregisters every plugin entry and drops
  the plugin's modules from ``sys.modules`` (a cached module would not run its
  decorators again).
* An entry point inside a package that was imported before plugins loaded is
  never dropped from ``sys.modules``, so a reload cannot re-run its decorators.
* A folder named in ``WORKBENCH_PLUGINS`` that does not exist is listed as failed.
* Tests that load their own plugins should do it inside :func:`isolated`, which
  restores the registries, :data:`STATUS` and ``sys.modules`` afterwards.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Iterator, Optional

from workbench import registry

GROUP = "workbench.plugins"
REPO_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"  # a source checkout's plugins/ (tests)
MODULE_PREFIX = "workbench_plugin_"


@dataclass
class PluginStatus:
    """What happened to one plugin: ``registered`` holds ``kind:name`` strings."""

    name: str
    source: str  # a file or folder path, or "entry point <value>"
    ok: bool
    error: str = ""  # one line, only when not ok
    registered: tuple[str, ...] = ()
    module: str = ""  # the name in sys.modules (folder plugins: workbench_plugin_<name>)
    path: str = ""  # folder of a package plugin (where it may ship presets), else ""
    owned: bool = False  # the module was first imported by this load, so unloading may drop it


STATUS: list[PluginStatus] = []
_done = False


def plugin_dirs() -> list[Path]:
    """The folders searched for plugins: those named by ``WORKBENCH_PLUGINS``, else none."""
    env = os.environ.get("WORKBENCH_PLUGINS", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p]


def _registries() -> list[registry.Registry]:
    return registry.registries()  # every registry, so a registry added later is covered too


def _snapshot() -> dict[int, dict[str, registry.Entry]]:
    return {id(r): dict(r._entries) for r in _registries()}


def _restore(snap: dict[int, dict[str, registry.Entry]]) -> None:
    for r in _registries():
        if id(r) in snap:
            r._entries.clear()
            r._entries.update(snap[id(r)])


def _purge_modules(prefix: str) -> None:
    """Drop a module and its submodules from sys.modules, so the next import re-runs them."""
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]


def one_line_error(err: BaseException, roots: tuple[str, ...] = ()) -> str:
    """``Type: message (file:line)``: the message's first line, and the deepest
    traceback frame inside ``roots`` (the plugin's own files), if any."""
    if isinstance(err, SyntaxError):  # no traceback frame in the file: the error names it
        return f"{type(err).__name__}: {err.msg} ({Path(err.filename or '?').name}, line {err.lineno})"
    msg = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {msg[0]}" if msg else type(err).__name__
    where = None
    for frame in traceback.extract_tb(err.__traceback__):
        if any(frame.filename == r or frame.filename.startswith(r + os.sep) for r in roots):
            where = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"{text} ({where})" if where else text


def _load_one(name: str, source: str, loader: Callable[[], None], *, module: str = "",
              roots: tuple[str, ...] = (), path: str = "") -> PluginStatus:
    """Run ``loader`` with the registries' source set to this plugin; on any error,
    restore the registries and record a one-line error."""
    prior = next((s for s in STATUS if s.name == name and s.ok), None)
    if prior is not None:
        st = PluginStatus(name, source, False, error=f"a plugin named {name!r} was already loaded from {prior.source}; "
                                                      "rename one of them", module=module, path=path)
        STATUS.append(st)
        return st
    snap = _snapshot()
    # Never drop a module someone imported before us (an entry point may live in a
    # package the app already uses); folder plugins always own theirs.
    owned = bool(module) and (module.startswith(MODULE_PREFIX) or module not in sys.modules)
    for r in _registries():
        r._source = f"plugin {name}"
    try:
        loader()
    except BaseException as err:  # noqa: BLE001 - a broken plugin must never stop the app
        _restore(snap)
        if owned:
            _purge_modules(module)
        if isinstance(err, KeyboardInterrupt):
            raise
        st = PluginStatus(name, source, False, error=one_line_error(err, roots), module=module, path=path)
    else:
        added = tuple(f"{r.kind}:{n}" for r in _registries() for n in r.names() if n not in snap[id(r)])
        st = PluginStatus(name, source, True, registered=added, module=module, path=path, owned=owned)
    finally:
        for r in _registries():
            r._source = "builtin"
    STATUS.append(st)
    return st


def _load_path(path: Path, mod_name: str) -> None:
    path = path.resolve()  # absolute file names in tracebacks, so errors can say where
    target = path / "__init__.py" if path.is_dir() else path
    _purge_modules(mod_name)  # a stale copy would hide the decorators from a reload
    spec = importlib.util.spec_from_file_location(
        mod_name, target, submodule_search_locations=[str(path)] if path.is_dir() else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # before exec: relative imports look the package up here
    spec.loader.exec_module(module)


def _folder_plugins(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if (path.suffix == ".py" and path.is_file()) or (path.is_dir() and (path / "__init__.py").is_file()):
            yield path


def _load_entry_point(ep) -> None:
    obj = ep.load()
    if getattr(ep, "attr", None) and callable(obj):
        obj()


def load_plugins() -> list[PluginStatus]:
    """Load every plugin once per process; returns :data:`STATUS` (one entry per plugin)."""
    global _done
    if _done:
        return STATUS
    _done = True
    for folder in plugin_dirs():
        if not folder.is_dir() and "WORKBENCH_PLUGINS" in os.environ:  # a typo there should be visible
            STATUS.append(PluginStatus(folder.name or str(folder), str(folder), False,
                                       error=f"WORKBENCH_PLUGINS: {folder} is not a folder"))
            continue
        for path in _folder_plugins(folder):
            name = path.stem
            mod = MODULE_PREFIX + name
            root = str(path.resolve())
            _load_one(name, str(path), lambda p=path, m=mod: _load_path(p, m), module=mod,
                      roots=(root,), path=root if path.is_dir() else "")
    try:
        eps = list(entry_points(group=GROUP))
    except Exception as err:  # noqa: BLE001 - broken distribution metadata
        STATUS.append(PluginStatus("(entry points)", GROUP, False, error=one_line_error(err)))
        eps = []
    for ep in eps:
        # The distribution's top-level package is what the plugin owns (and what a
        # reload re-imports). find_spec on a top-level name imports nothing.
        top = ep.value.split(":")[0].strip().split(".")[0]
        spec = _find_spec(top)
        origin = spec.origin if spec is not None and spec.origin else ""
        pkg_dir = str(Path(origin).parent) if origin.endswith("__init__.py") else ""
        roots = (pkg_dir or origin,) if origin else ()
        _load_one(ep.name, f"entry point {ep.value}", lambda e=ep: _load_entry_point(e),
                  module=top, roots=roots, path=pkg_dir)
    return STATUS


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except Exception:  # noqa: BLE001 - a broken finder must not stop the app
        return None


def unload_plugins() -> None:
    """Unregister every plugin entry, forget :data:`STATUS` and drop the plugins'
    modules from ``sys.modules`` (entry-point modules included), so that
    :func:`load_plugins` can run them again."""
    global _done
    for r in _registries():
        for e in list(r):
            if e.source.startswith("plugin "):
                r.unregister(e.name)
    for st in STATUS:
        if st.owned:
            _purge_modules(st.module)
    STATUS.clear()
    _done = False


def reload_plugins() -> list[PluginStatus]:
    """Unload, then load again (after ``WORKBENCH_PLUGINS`` or a plugin file changed)."""
    registry.load_builtins()
    unload_plugins()
    return load_plugins()


@contextlib.contextmanager
def isolated() -> Iterator[list[PluginStatus]]:
    """Snapshot the registries, :data:`STATUS` and ``sys.modules``; restore them on exit.

    For tests::

        with plugins.isolated():
            monkeypatch.setenv("WORKBENCH_PLUGINS", str(tmp_path))
            plugins.reload_plugins()
            ...  # the tmp plugins are registered here, the repository's are not

    The built-ins are loaded first: their modules register once per process, so
    a snapshot taken before them could never be refilled.
    """
    global _done
    registry.load_builtins()
    snap = _snapshot()
    status, done = list(STATUS), _done
    saved = {k: m for k, m in sys.modules.items() if _is_plugin_module(k, STATUS)}
    try:
        yield STATUS
    finally:
        # Plugin modules (not their dependencies: torch stays imported) go back to
        # what they were, so the registries' objects match sys.modules again.
        for key in [k for k in sys.modules if _is_plugin_module(k, STATUS) or _is_plugin_module(k, status)]:
            del sys.modules[key]
        sys.modules.update(saved)
        _restore(snap)
        STATUS[:] = status
        _done = done
        for r in _registries():
            r._source = "builtin"


def _is_plugin_module(key: str, status: list[PluginStatus]) -> bool:
    if key.startswith(MODULE_PREFIX):
        return True
    return any(s.owned and (key == s.module or key.startswith(s.module + ".")) for s in status)


def module(name: str):
    """The imported module of a loaded plugin (e.g. to reach its helpers in a test)."""
    for st in STATUS:
        if st.name == name and st.ok:
            return sys.modules[st.module]
    raise KeyError(f"plugin {name!r} is not loaded; loaded: {', '.join(s.name for s in STATUS if s.ok) or 'none'}")


def preset_files() -> dict[str, Path]:
    """``*.toml`` presets shipped in loaded package plugins, by file stem.

    The preset loader (``workbench/presets``) does not read these yet; see
    ``plugins/README.md``. A stem shipped by two plugins keeps the first.
    """
    out: dict[str, Path] = {}
    for st in STATUS:
        if st.ok and st.path:
            for p in sorted(Path(st.path).glob("*.toml")):
                out.setdefault(p.stem, p)
    return out


def summary() -> Optional[str]:
    """One line for a status bar: ``2 plugins, 1 FAILED (name)``; None without plugins."""
    if not STATUS:
        return None
    bad = [s.name for s in STATUS if not s.ok]
    text = f"{len(STATUS)} plugin{'s' * (len(STATUS) != 1)}"
    return text + (f", {len(bad)} FAILED ({', '.join(bad)})" if bad else "")
