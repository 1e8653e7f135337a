"""Launch: pick a preset, edit the generated form, preview the LR schedule, launch.

The form's first section, ``launch``, holds the choices that are not spec fields: the
preset (the picker), its scale, and the number of seeds (set from the preset's
``[study] seeds``, its scale's ``study.seeds`` first, whenever a preset or scale is
picked or the form is reset; 1 without). The schema (registries: models, datasets,
schedules, variants) loads in a worker after the first frame, since the model registry
imports torch; so do the presets (pydantic). Every edit re-validates
with :func:`workbench.spec.validate`, whose message names the field: it is shown under
that field, and launch is blocked while any field is invalid. One seed and no grid: one
run through the launcher. More seeds, or a preset with a ``[grid]``: a study through
:func:`workbench.launch.study.run_study` in a thread worker (same launcher); the status
line counts its runs from the grid it expands (:func:`workbench.faces.forms.launch_grid`).
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from workbench.faces.forms import (devices_for, launch_grid, launch_summary, lookup, overrides_between, plan_summary,
                             study_seeds)
from workbench.tui.widgets.field_editor import FieldEditor
from workbench.tui.widgets.lr_preview import LRPreview
from workbench.tui.widgets.spec_form import SpecForm

_launches = itertools.count(1)
PRESET, SCALE, SEEDS = "launch.preset", "launch.scale", "launch.seeds"


class SchemaLoaded(Message):
    def __init__(self, fields: list[dict], presets: list[str]) -> None:
        super().__init__()
        self.fields = fields
        self.presets = presets


class StudyEnded(Message):
    def __init__(self, name: str, text: str, ok: bool) -> None:
        super().__init__()
        self.name, self.text, self.ok = name, text, ok


def launch_fields(presets: list[str], preset: str, scale: Optional[str]) -> list[dict[str, Any]]:
    """The form rows that are not spec fields (``extra``: left out of the spec)."""
    base = {"section": "launch", "nullable": False, "extra": True, "choices": None}
    return [
        {**base, "path": PRESET, "name": "preset", "type": "choice", "choices": presets, "default": preset,
         "value": preset, "help": "Preset: one experiment of the paper, or a smoke-sized default"},
        {**base, "path": SCALE, "name": "scale", "type": "choice", "choices": [], "default": None, "value": scale,
         "nullable": True, "help": "Scale of the preset (auto = its full size; smoke = minutes on a CPU)"},
        {**base, "path": SEEDS, "name": "seeds", "type": "int", "default": 1, "value": 1, "ge": 1,
         "help": "Seeds: 1 launches one run; more launch a study (one child run per seed, mean ± std in Compare); "
                 "set from the preset's [study] seeds"},
    ]


class LaunchPane(Vertical):
    TITLE = "Launch"
    FOCUS = "#form"
    BINDINGS = [
        Binding("ctrl+r", "launch", "Start"),
        Binding("ctrl+o", "reset", "Reset"),
    ]

    def __init__(self, launcher: Any, store_uri: Optional[str], preset: str = "quickstart", scale: Optional[str] = None):
        super().__init__()
        self.launcher = launcher
        self.store_uri = store_uri
        self.preset = preset
        self.scale = scale
        self.spec = None  # the validated spec, or None while the form is invalid
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="launch-main"):
            with Vertical(id="launch-left"):
                yield SpecForm(id="form")
                yield FieldEditor(id="field-editor")
            with Vertical(id="launch-side"):
                yield Static("LR per epoch, windows shaded", classes="pane-title")
                yield LRPreview(id="lr-preview")
                yield Static("", id="plan-summary")
        yield Static("", id="field-help")
        yield Static(f"Loading {self.preset}…", id="launch-status")

    def on_mount(self) -> None:
        self.query_one(SpecForm).placeholder = "Loading models, datasets and schedules…"
        # After the first frame: the worker imports torch, and its GIL-heavy import would
        # otherwise hold the first paint back.
        self.call_after_refresh(self.set_timer, 0.05, self._load_schema)

    @property
    def form(self) -> SpecForm:
        return self.query_one(SpecForm)

    # -- schema ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="schema", exit_on_error=False)
    def _load_schema(self) -> None:
        from workbench.presets import preset_names
        from workbench.spec import form_fields

        self.post_message(SchemaLoaded(form_fields(), preset_names()))  # imports the registries, hence torch

    @on(SchemaLoaded)
    def _schema_loaded(self, message: SchemaLoaded) -> None:
        if self.preset not in message.presets:
            self.notify(f"No preset {self.preset!r}; showing {message.presets[0]}.", severity="warning")
            self.preset = message.presets[0]
        fields = launch_fields(message.presets, self.preset, self.scale) + message.fields
        self.form.build(fields, {"device": devices_for(self.launcher)})
        self.loaded = True
        self._apply_preset()

    # -- preset and scale -------------------------------------------------------------------------
    def _base(self) -> dict[str, Any]:
        from workbench.presets import read_preset, resolve_dict

        return resolve_dict(read_preset(self.preset), None, self.scale)

    def _apply_preset(self) -> None:
        """Scale choices of the preset, then every spec field from it, and the seeds from
        its ``[study] seeds`` (:func:`workbench.faces.forms.study_seeds`)."""
        from workbench.presets import read_preset, scales
        from workbench.spec import SpecError

        try:
            raw = read_preset(self.preset)
            options = scales(raw)
            self.scale = self.scale if self.scale in options else None
            base = self._base()
        except SpecError as err:
            self._set_status(f"✗ {err}", ok=False)
            return
        form = self.form
        form.choices[SCALE] = options
        form.set_values({**base, "launch": {"preset": self.preset, "scale": self.scale,
                                            "seeds": study_seeds(raw, self.scale)}})
        self._validate()
        self._show_editor(form.cursor_field)

    def action_reset(self) -> None:
        if self.loaded:
            self._apply_preset()

    # -- validation -------------------------------------------------------------------------------
    @on(SpecForm.Changed)
    def _changed(self, message: SpecForm.Changed) -> None:
        if message.path in (PRESET, SCALE):
            self.preset = self.form.values[PRESET] or self.preset
            self.scale = self.form.values[SCALE]
            self._apply_preset()
        else:
            self._validate()

    def _collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        data, errors = self.form.collect()
        data.pop("launch", None)
        data["preset"] = self.preset  # the picker's field, not a form row
        seeds = self.form.values.get(SEEDS)
        if SEEDS not in errors and not (isinstance(seeds, int) and seeds >= 1):
            errors[SEEDS] = f"{SEEDS}: must be a whole number ≥ 1"
        return data, errors

    def _validate(self) -> None:
        if not self.loaded:  # the registries are still loading (in a worker)
            return
        from workbench.spec import SpecError, validate

        data, errors = self._collect()
        spec, status = None, ""
        if not errors:
            try:
                spec = validate(data)
            except SpecError as err:
                status = str(err)
                path = status.split(":", 1)[0]
                errors = {path: status} if path in self.form.fields else {}
        self.form.show_errors(errors)
        self.spec = spec
        self.query_one(LRPreview).show(spec)
        if spec is None:
            where = ", ".join(errors)
            self._set_status(f"✗ launch blocked: fix {where} (message under it)" if where else f"✗ {status}", ok=False)
            self.query_one("#plan-summary", Static).update("", layout=False)
        else:
            self.query_one("#plan-summary", Static).update(plan_summary(spec), layout=False)
            what = launch_summary(spec, self.form.values[SEEDS], self._grid(data))
            self._set_status(f"✓ {what}   ^r launch", ok=True)

    def _grid(self, data: Optional[dict[str, Any]] = None) -> Optional[dict]:
        """The grid a launch expands (None without a ``[grid]``), the fields the form's
        ``data`` changed from the preset pinned: :func:`workbench.faces.forms.launch_grid`."""
        return launch_grid(self.preset, self.scale, list(self.form.fields.values()), data)

    def _set_status(self, text: str, ok: bool) -> None:
        st = self.query_one("#launch-status", Static)
        st.update(text, layout=False)
        st.set_class(not ok, "-error")

    # -- the editor line --------------------------------------------------------------------------
    @on(SpecForm.Focused)
    def _focused(self, message: SpecForm.Focused) -> None:
        editor = self.query_one(FieldEditor)
        if message.field is not None and editor.path == message.field["path"] and editor.has_focus_within:
            return  # the form re-rendered under an edit in progress: leave the editor alone
        self._show_editor(message.field)

    def _show_editor(self, f: Optional[dict]) -> None:
        form, editor = self.form, self.query_one(FieldEditor)
        if f is None:
            editor.edit(None, "", None)
            return
        path = f["path"]
        choices = form.choices.get(path) if f["type"] == "choice" else None
        value = form.values.get(path) if f["type"] in ("choice", "bool") else form.text(path)
        editor.edit(f, value, choices)
        text = f"{path}: {f.get('help', '')}"
        chosen = form.values.get(path)
        if f.get("choice_help") and chosen in f["choice_help"]:
            text += f"  ·  {chosen}: {f['choice_help'][chosen]}"
        elif path == PRESET:
            from workbench.presets import describe

            text = f"{self.preset}: {describe(self.preset)}"
        self.query_one("#field-help", Static).update(text, layout=False)

    @on(SpecForm.EditRequested)
    def _edit(self, message: SpecForm.EditRequested) -> None:
        self.query_one(FieldEditor).focus_editor()

    @on(FieldEditor.Edited)
    def _edited(self, message: FieldEditor.Edited) -> None:
        self.form.set_input(message.path, message.raw)
        field = self.form.fields[message.path]
        if field["type"] == "choice":
            self._show_editor(field)  # the help of the new choice

    @on(FieldEditor.Done)
    def _edit_done(self, message: FieldEditor.Done) -> None:
        self.form.focus()

    # -- launch -----------------------------------------------------------------------------------
    def action_launch(self) -> None:
        if not self.loaded:
            self.notify("The form is still loading.", severity="warning")
            return
        self._validate()
        if self.spec is None:
            self.app.bell()
            self.form.go_to_first_error()
            self.notify("Fix the field marked ✗ first; nothing was launched.", severity="error")
            return
        from workbench.spec import validate

        data, _ = self._collect()
        if not lookup(data, "tracking.uri", None) and self.store_uri:
            data.setdefault("tracking", {})["uri"] = self.store_uri  # runs log where the app reads
        seeds = self.form.values[SEEDS]
        if seeds > 1 or self._grid():
            overrides = overrides_between(list(self.form.fields.values()), self._base(), data)
            self._run_study(self.preset, seeds, self.scale, overrides)
            what = launch_summary(self.spec, seeds, self._grid(data))
            self.notify(f"Study {self.preset}: {what.split(',')[0][7:]}  (F3: Runs)")
            return
        spec = validate(data)
        key = f"{spec.preset or 'spec'}-{spec.averaging.variant}-s{spec.seed} #{next(_launches)}"
        self.launcher.submit(spec, key=key)
        self.notify(f"Queued {key}  (F3: Runs)")

    @work(thread=True, group="study", exit_on_error=False)
    def _run_study(self, preset: str, seeds: int, scale: Optional[str], overrides: dict[str, Any]) -> None:
        """Blocks while the study runs. run_study itself waits in a daemon thread, so this
        worker (and the app's exit) never hangs on runs left running."""
        from workbench.launch.study import StudyControl, load_study, run_study
        from workbench.spec import SpecError

        try:
            study = load_study(preset, seeds=seeds, scale=scale, overrides=overrides)
        except SpecError as err:
            self.post_message(StudyEnded(preset, str(err), False))
            return
        box: dict[str, Any] = {}
        control = StudyControl()  # the Runs screen's cancel-study key reaches it through cancel_study

        def target() -> None:
            try:
                box["result"] = run_study(study, launcher=self.launcher, control=control)
            except Exception as err:  # reported to the user, the app carries on
                box["error"] = f"{type(err).__name__}: {err}"

        t = threading.Thread(target=target, name=f"study-{study.name}", daemon=True)
        t.start()
        worker = get_current_worker()
        while t.is_alive():
            if worker.is_cancelled:
                return
            t.join(0.25)
        if "error" in box:
            self.post_message(StudyEnded(study.name, box["error"], False))
        else:
            r = box["result"]
            why = f" ({control.reason})" if control.cancelled else ""
            self.post_message(StudyEnded(study.name, f"{r.status}{why}: parent run {r.parent_run_id}",
                                         r.status == "FINISHED"))

    @on(StudyEnded)
    def _study_ended(self, message: StudyEnded) -> None:
        self.notify(f"Study {message.name}: {message.text}", severity="information" if message.ok else "error",
                    timeout=8)
