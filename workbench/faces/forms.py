"""The run form's logic, shared by both faces: the terminal app's
:class:`~workbench.tui.widgets.spec_form.SpecForm` (Textual) and the notebook's
:class:`~workbench.notebook.form.SpecForm` (ipywidgets) draw the same form, with the
same rules, from :func:`workbench.spec.form_fields`.

No UI toolkit here, and nothing heavy at import time (the terminal app paints its first
frame before torch loads): the spec and the engine's torch-free schedule and plan are
imported on first use.

* layout: :data:`SECTION_ORDER` and :func:`form_order` (unknown sections follow,
  top-level fields are the section ``run``), :func:`relevance` (a field whose help
  starts with ``<choice>:``, ``pswa: window length P``, belongs to that choice of its
  section's selector, ``averaging.variant``, and is hidden while another is chosen);
* values: :func:`parse_text` (typed text -> value), :func:`lookup` / :func:`set_path`
  (dotted paths in nested spec dicts), :func:`overrides_between` (what the form changed
  from the preset);
* launching: :func:`devices_for` (the device suggestions), :func:`launch_summary`;
* studies (over :func:`workbench.presets.study_shape`, a preset's grid and ``[study]``
  table at a scale, as :func:`~workbench.launch.study.load_study` expands them): :func:`study_grid` and
  :func:`launch_grid` (the grid a launch expands once the form pins fields: what the
  status line counts) and :func:`study_seeds` (the seeds a preset asks for: the seeds
  field's default);
* previews: :func:`schedule_view` (the LR at every iteration and the averaging plan the
  run executes) and :func:`plan_summary`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

SECTION_ORDER = ("launch", "model", "dataset", "optimizer", "schedule", "averaging", "budget", "", "tracking")
HIDDEN = ("preset",)  # chosen with the preset picker
NOMINAL_IPE = 8  # iterations per epoch drawn for per-iteration schedules (the real count depends on the data)


# ----------------------------------------------------------------------------- layout


def form_order(fields: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(the sections in :data:`SECTION_ORDER`, the fields section by section), leaving
    out the :data:`HIDDEN` ones."""
    kept = [f for f in fields if f["path"] not in HIDDEN]
    order = {s: i for i, s in enumerate(SECTION_ORDER)}
    sections = sorted(dict.fromkeys(f["section"] for f in kept), key=lambda s: order.get(s, len(order)))
    return sections, [f for s in sections for f in kept if f["section"] == s]


def relevance(fields: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """path -> (selector path, choice) for fields that belong to one choice of a selector."""
    selectors: dict[str, list[dict]] = {}
    for f in fields:
        if f["type"] == "choice" and f.get("choices"):
            selectors.setdefault(f["section"], []).append(f)
    out = {}
    for f in fields:
        head = f.get("help", "").split(":", 1)[0].strip().lower()
        if not head or ":" not in f.get("help", ""):
            continue
        for sel in selectors.get(f["section"], []):
            if sel is not f and head in [str(c).lower() for c in sel["choices"]]:
                out[f["path"]] = (sel["path"], head)
                break
    return out


# ----------------------------------------------------------------------------- values


class FieldParseError(ValueError):
    """The text typed for a field is not a value of its type."""


def parse_text(field: dict[str, Any], text: str, *, auto_is_none: bool = False) -> Any:
    """Text typed for a field -> its value; raises FieldParseError with a short reason.

    Empty text is None for a nullable field; with ``auto_is_none`` (the notebook's
    inputs, whose placeholder says ``auto``) so is ``auto``, except in a text field."""
    text = text.strip()
    kind = field["type"]
    if text == "" or (auto_is_none and field["nullable"] and text.lower() == "auto" and kind != "str"):
        if field["nullable"]:
            return None
        if kind == "str":
            return ""
        raise FieldParseError("a value is required")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise FieldParseError(f"expected an integer, got {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise FieldParseError(f"expected a number, got {text!r}") from None
    if kind in ("list", "dict"):
        want = list if kind == "list" else dict
        try:
            value = json.loads(text)
        except ValueError:
            from workbench.spec import parse_value

            value = parse_value(text)
        if not isinstance(value, want):
            example = "[[0, 0.1], [10, 0.01]]" if kind == "list" else '{"width": 2}'
            raise FieldParseError(f"expected a {kind} such as {example}")
        return value
    if kind == "bool":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise FieldParseError("expected true or false")
    return text


def lookup(data: dict[str, Any], path: str, default: Any) -> Any:
    """The value at a dotted path of a nested dict, or ``default``."""
    node: Any = data
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return default
        node = node[k]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Put a value at a dotted path of a nested dict (making the dicts on the way)."""
    *heads, last = path.split(".")
    for k in heads:
        data = data.setdefault(k, {})
    data[last] = value


def overrides_between(fields: list[dict], base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """{dotted path: form value} for the spec fields the form changed from the preset's
    values (rows marked ``extra``, which are not spec fields, are left out)."""
    out = {}
    for f in fields:
        if f.get("extra"):
            continue
        value = lookup(data, f["path"], f["default"])
        if value != lookup(base, f["path"], f["default"]):
            out[f["path"]] = value
    return out


# ----------------------------------------------------------------------------- launching


def devices_for(launcher: Any) -> list[str]:
    """The device field's suggestions: auto, cpu, and cuda with each of the launcher's GPUs."""
    gpus = list(getattr(launcher, "gpus", []) or [])
    return ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in gpus] if gpus else [])


def study_grid(preset: dict[str, Any], scale: Optional[str], pinned: Iterable[str] = ()) -> Optional[dict]:
    """The grid a launch of ``preset`` at ``scale`` expands (None without a ``[grid]``):
    :func:`study_shape`'s grid minus the ``pinned`` fields (those the form changed from
    the preset: the run takes the form's value, as a ``--set`` pins a grid field in
    ``load_study``). Every field pinned: ``{"": [None]}``, one cell (still a study)."""
    from workbench.presets import study_shape

    grid, _ = study_shape(preset, scale)
    if not grid:
        return None
    pinned = set(pinned)
    return {k: v for k, v in grid.items() if k not in pinned} or {"": [None]}


def launch_grid(preset: str, scale: Optional[str], fields: list[dict], data: Optional[dict] = None) -> Optional[dict]:
    """The grid a face's Launch expands for the preset (by name) at ``scale``
    (:func:`study_grid`), with the fields whose form value (``data``, the spec dict of
    the form's ``fields``) differs from the preset's pinned, as the launch passes them to
    ``load_study``; without ``data`` nothing is pinned."""
    from workbench.presets import read_preset, resolve_dict

    raw = read_preset(preset)
    grid = study_grid(raw, scale)
    if grid is None or data is None:
        return grid
    return study_grid(raw, scale, overrides_between(fields, resolve_dict(raw, None, scale), data))


def study_seeds(preset: dict[str, Any], scale: Optional[str]) -> int:
    """The number of seeds the preset's ``[study] seeds`` asks for (the scale's
    ``"study.seeds"`` wins), else 1: the seeds field's default in both faces."""
    from workbench.presets import study_shape

    _, meta = study_shape(preset, scale)
    try:
        return max(1, int(meta.get("seeds", 1)))
    except (TypeError, ValueError):
        return 1


def study_size(grid: Optional[dict], seeds: int) -> str:
    """``N configuration(s) × S seed(s) = M runs`` of a study (``grid`` from :func:`study_grid`)."""
    cells = 1
    for v in (grid or {}).values():
        cells *= len(v) if isinstance(v, list) else 1
    return f"{cells} configuration(s) × {seeds} seed(s) = {cells * seeds} runs"


def launch_summary(spec: Any, seeds: int, grid: Optional[dict]) -> str:
    """What a launch submits: one run, or a study (``grid``, from :func:`study_grid`, × seeds)."""
    size = f"{spec.budget.epochs} epochs on {spec.device}"
    if grid or seeds > 1:
        return f"study: {study_size(grid, seeds)}, {size}"
    return f"1 run, {size}"


# ----------------------------------------------------------------------------- previews


@dataclass
class ScheduleView:
    """The LR at every iteration (x in epochs: iteration / iters_per_epoch) and the plan's
    windows (an EMA is one window too, with its ``ema`` weighting)."""

    x: list[float]
    lr: list[float]
    windows: list[Any] = field(default_factory=list)  # engine.plan.Window
    epochs: int = 0
    iters_per_epoch: int = 1
    variant: str = "none"

    def lr_at_epoch(self, epoch: int, where: str = "last") -> float:
        """The LR of the 0-based ``epoch``'s first or last iteration."""
        off = self.iters_per_epoch - 1 if where == "last" else 0
        return self.lr[epoch * self.iters_per_epoch + off]

    @staticmethod
    def label(window: Any) -> str:
        """A window's name in a preview: its number (w1, w2, ...) for the paper's
        numbered windows, else its weighting (``ema 0.999``)."""
        return f"w{window.index + 1}" if window.numbered else window.label


def schedule_view(spec: Any, iters_per_epoch: Optional[int] = None, points: int = 400) -> ScheduleView:
    """The schedule and windows of a RunSpec, computed with the engine's own
    :func:`~workbench.engine.schedules.build_schedule` and
    :func:`~workbench.engine.plan.build_plan`; ``iters_per_epoch`` defaults to a nominal
    count that keeps about ``points`` points (a cyclic schedule needs the real one to
    show its true cycles)."""
    from workbench.engine.plan import build_plan
    from workbench.engine.schedules import RunShape, build_schedule

    epochs = spec.budget.epochs
    plan = build_plan(spec.averaging, epochs)
    ipe = iters_per_epoch or max(1, min(NOMINAL_IPE, points // max(epochs, 1)))
    shape = RunShape(epochs, ipe, plan.averaging_start)
    fn = build_schedule(spec.schedule, shape)
    x = [it / ipe for it in range(shape.total_iters)] + [float(epochs)]
    lr = [fn(it) for it in range(shape.total_iters)]
    lr.append(lr[-1])
    return ScheduleView(x, lr, list(plan.windows), epochs, ipe, spec.averaging.variant)


def plan_summary(spec: Any, most: int = 4, explain: bool = False) -> str:
    """One line: the windows of the spec's averaging plan (↺ = restart at its end; a
    weighting other than the equal mean in brackets, ``(ema 0.999)``), the first
    ``most`` of them; ``explain`` says what the numbers are."""
    from workbench.engine.plan import build_plan

    plan = build_plan(spec.averaging, spec.budget.epochs)
    if not plan.windows:
        return "no averaging (backbone only)"
    ws = plan.windows

    def one(w: Any) -> str:
        weighting = "" if w.weighting == "equal" else f" ({w.label})"
        return f"{w.start}-{w.end}{'↺' if w.restart else ''}{weighting}"

    shown = ", ".join(one(w) for w in ws[:most])
    more = f", … ({len(ws)} in all)" if len(ws) > most else ""
    unit = " (epochs, 0-based [start, end))" if explain else ""
    return f"{len(ws)} window{'s' if len(ws) > 1 else ''}{unit}: {shown}{more}"
