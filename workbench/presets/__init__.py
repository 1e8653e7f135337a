"""Presets: TOML files shipped in this folder, one per experiment.

A preset is a RunSpec in TOML plus an optional ``description`` and optional
``[scales.<name>]`` tables of dotted overrides (``"budget.epochs" = 3``), so one
preset runs at ``paper`` scale on a GPU and at ``smoke`` scale on a laptop
through the same code path. A preset may also carry a ``[grid]`` table (a study);
a single run takes the preset's own values. ``extends = "other"`` starts from
another preset and deep-merges this one over it.

Package plugins may ship presets too (``plugins/<name>/*.toml``): they are found by name
once plugins are loaded (a name not found here loads them), and a built-in name wins.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Optional

from workbench.spec import RunSpec, SpecError, apply_overrides, validate

HERE = Path(__file__).parent
_META_KEYS = ("scales", "grid", "study", "cases")


def plugin_presets(load: bool = False) -> dict[str, Path]:
    """Presets shipped by loaded package plugins, by name; built-in names win. With
    ``load``, the built-ins and plugins are loaded first (imports torch); without, only
    plugins already loaded count (the terminal app's first frame must not load them)."""
    from workbench import plugins, registry

    if load:
        registry.load_builtins()
    return {k: p for k, p in plugins.preset_files().items() if not (HERE / f"{k}.toml").exists()}


def preset_names(load_plugins: bool = False) -> list[str]:
    """Built-in presets, plus those of loaded plugins (``load_plugins``: load them first)."""
    return sorted({p.stem for p in HERE.glob("*.toml")} | set(plugin_presets(load_plugins)))


def preset_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = HERE / f"{name_or_path}.toml"
    if cand.exists():
        return cand
    if p.suffix != ".toml" and "/" not in name_or_path:
        plug = plugin_presets(load=True).get(name_or_path)
        if plug is not None:
            return plug
    if p.suffix == ".toml":
        raise SpecError(f"spec: file {name_or_path} not found")
    raise SpecError(f"preset: unknown preset {name_or_path!r}; choose one of: {', '.join(preset_names())} "
                    "(or a .toml file)")


def read_preset(name_or_path: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = preset_path(name_or_path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"spec: {path.name} is not valid TOML ({err})") from None
    base = data.pop("extends", None)
    if base:
        if _seen and base in _seen:
            raise SpecError(f"extends: preset {base!r} extends itself")
        data = deep_merge(read_preset(base, (_seen or ()) + (base,)), data)
    if path.parent == HERE or path in plugin_presets().values():
        data["preset"] = path.stem
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def describe(name: str) -> str:
    try:
        return read_preset(name).get("description", "")
    except SpecError as err:
        return f"(broken: {err})"


def scales(data: dict[str, Any]) -> list[str]:
    return sorted(data.get("scales", {}))


def resolve_dict(data: dict[str, Any], overrides: Optional[list[str] | dict] = None,
                 scale: Optional[str] = None) -> dict[str, Any]:
    """Preset dict -> spec dict: apply the scale table, then the overrides."""
    data = dict(data)
    table = data.pop("scales", {}) or {}
    for key in _META_KEYS:
        data.pop(key, None)
    if scale:
        if scale not in table and scale != "paper":
            known = ", ".join(sorted(set(table) | {"paper"}))
            name = f" {data['preset']}" if data.get("preset") else ""
            raise SpecError(f"--scale: preset{name} has no scale {scale!r}; "
                            f"choose one of: {known} (paper = the full size)")
        # "grid.<field>" / "study.<key>" entries shape a study (launch/study.py), not a run
        entries = {k: v for k, v in table.get(scale, {}).items() if not k.startswith(("grid.", "study."))}
        data = apply_overrides(data, entries)
    if overrides:
        data = apply_overrides(data, overrides)
    return data


def load_spec(name_or_path: str | dict, overrides: Optional[list[str] | dict] = None,
              scale: Optional[str] = None) -> RunSpec:
    """Preset name, TOML path or dict -> validated RunSpec. Raises SpecError."""
    data = read_preset(name_or_path) if isinstance(name_or_path, str) else dict(name_or_path)
    return validate(resolve_dict(data, overrides, scale))


def study_shape(preset: dict[str, Any], scale: Optional[str]) -> tuple[dict[str, list], dict[str, Any]]:
    """(grid, study table) of a preset dict (:func:`~workbench.presets.read_preset`) at
    ``scale``: the ``[grid]`` (field -> list of values) with the scale's ``"grid.<field>"``
    entries replacing lists, and the ``[study]`` table with the scale's ``"study.<key>"``
    entries applied. :func:`~workbench.launch.study.load_study` expands exactly these (and the faces count)."""
    grid = {k: v if isinstance(v, list) else [v] for k, v in (preset.get("grid") or {}).items()}
    meta = dict(preset.get("study") or {})
    table = ((preset.get("scales") or {}).get(scale) or {}) if scale else {}
    for k, v in table.items():
        if k.startswith("grid."):
            grid[k[5:]] = v if isinstance(v, list) else [v]
        elif k.startswith("study."):
            meta[k[6:]] = v
    return grid, meta
