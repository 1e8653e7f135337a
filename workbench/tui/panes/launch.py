"""Launch: pick a preset, edit the generated form, preview the LR schedule, launch.

The pane only draws :class:`workbench.faces.launch.LaunchController` (shared with the
notebook's Launch panel): the controller says what a picked preset fills the form with,
checks every edit (the one-line message of :func:`workbench.spec.validate`, shown under
the field it names, blocks launch), and launches one run or a study. The form's first
section, ``launch``, holds the rows that are not spec fields: preset, scale, seeds.

The schema (registries: models, datasets, schedules, variants) loads in a worker after
the first frame, since the model registry imports torch; a launch runs in a worker too
(a study's cells are validated first, then it runs on the controller's thread).
"""
from __future__ import annotations

from typing import Any, Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from workbench.faces.forms import plan_summary
from workbench.faces.launch import PRESET, SCALE, SEEDS, DrawsLaunch, LaunchController, LaunchRefused, StudyLaunch
from workbench.tui.widgets.field_editor import FieldEditor
from workbench.tui.widgets.lr_preview import LRPreview
from workbench.tui.widgets.spec_form import SpecForm


class SchemaLoaded(Message):
    def __init__(self, fields: list[dict]) -> None:
        super().__init__()
        self.fields = fields


class StudyEnded(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


class LaunchDone(Message):
    """A launch the worker submitted (``text``) or refused (``refused``)."""

    def __init__(self, text: str, refused: Optional[LaunchRefused] = None) -> None:
        super().__init__()
        self.text, self.refused = text, refused


class LaunchPane(DrawsLaunch, Vertical):
    TITLE = "Launch"
    FOCUS = "#form"
    BINDINGS = [
        Binding("ctrl+r", "launch", "Start"),
        Binding("ctrl+o", "reset", "Reset"),
    ]

    def __init__(self, launcher: Any, store_uri: Optional[str], preset: str = "quickstart", scale: Optional[str] = None):
        super().__init__()
        self.controller = LaunchController(launcher, store_uri, preset, scale)
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
        yield Static("", id="field-help", markup=False)
        yield Static(f"Loading {self.preset}…", id="launch-status", markup=False)

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
        from workbench.spec import SpecError

        c = self.controller
        if c.preset not in preset_names():
            self.app.call_from_thread(self.notify, f"No preset {c.preset!r}; showing quickstart.", severity="warning")
            c.preset = "quickstart" if "quickstart" in preset_names() else preset_names()[0]
        try:
            fields = c.fields()  # imports the registries, hence torch
        except SpecError as err:
            self.post_message(LaunchDone("", LaunchRefused(str(err))))
            return
        self.post_message(SchemaLoaded(fields))

    @on(SchemaLoaded)
    def _schema_loaded(self, message: SchemaLoaded) -> None:
        self.form.build(message.fields, self.controller.choices())
        self.loaded = True
        self._apply_preset()

    # -- preset and scale -------------------------------------------------------------------------
    def _apply_preset(self, preset: Optional[str] = None, scale: Any = ...) -> None:
        """Every field from the picked preset at its scale, the scale choices and the seeds
        (from the controller)."""
        from workbench.spec import SpecError

        try:
            values = self.controller.select(preset, scale)
        except SpecError as err:
            self._set_status(f"✗ {err}", ok=False)
            return
        form = self.form
        form.choices[SCALE] = values.scales
        form.set_values({**values.data, "launch": {"preset": values.preset, "scale": values.scale,
                                                   "seeds": values.seeds}})
        self._validate()
        self._show_editor(form.cursor_field)

    def action_reset(self) -> None:
        if self.loaded:
            self._apply_preset()

    # -- validation -------------------------------------------------------------------------------
    @on(SpecForm.Changed)
    def _changed(self, message: SpecForm.Changed) -> None:
        if message.path in (PRESET, SCALE):
            self._apply_preset(self.form.values[PRESET] or self.preset, self.form.values[SCALE])
        else:
            self._validate()

    def _validate(self):
        if not self.loaded:  # the registries are still loading (in a worker)
            return None
        data, errors = self.form.collect()
        check = self.controller.check(data, self.form.values.get(SEEDS), errors)
        self.form.show_errors({p: m for p, m in check.errors.items() if p != "spec"})
        self.spec = check.spec
        self.query_one(LRPreview).show(check.spec)
        summary = plan_summary(check.spec) if check.spec is not None else ""
        self.query_one("#plan-summary", Static).update(summary, layout=False)
        self._set_status(f"✓ {check.status}   ^r launch" if check.ok else f"✗ {check.status}", ok=check.ok)
        return check

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
            text = f"{self.preset}: {self.controller.describe()}"
        self.query_one("#field-help", Static).update(Text(text), layout=False)  # help is text, not markup

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
        check = self._validate()
        if check is None or not check.ok:
            self.app.bell()
            self.form.go_to_first_error()
            self.notify("Fix the field marked ✗ first; nothing was launched.", severity="error")
            return
        data, _ = self.form.collect()
        self._launch(data, self.form.values[SEEDS])

    @work(thread=True, group="launch", exit_on_error=False)
    def _launch(self, data: dict[str, Any], seeds: int) -> None:
        """A worker: a study's cells are validated before anything is submitted."""
        try:
            launched = self.controller.launch(data, seeds, on_study_end=self._study_end)
        except LaunchRefused as refused:
            self.post_message(LaunchDone("", refused))
            return
        if launched.kind == "study":
            self.post_message(LaunchDone(f"Study {launched.study.name}: {launched.size}  (F3: Runs)"))
            worker = get_current_worker()
            while launched.study.is_alive() and not worker.is_cancelled:  # the worker lasts as long as the study
                launched.study.join(0.25)
        else:
            self.post_message(LaunchDone(f"Queued {launched.key}  (F3: Runs)"))

    def _study_end(self, study: StudyLaunch) -> None:  # on the study's thread
        self.post_message(StudyEnded(*study.outcome()))

    @on(LaunchDone)
    def _launch_done(self, message: LaunchDone) -> None:
        if message.refused is None:
            self.notify(message.text)
            return
        r = message.refused
        if r.field and r.field in self.form.fields:
            self.form.show_errors({**self.form.errors, r.field: r.message})
        self._set_status(f"✗ launch refused: {r.message}", ok=False)
        self.notify(f"Nothing launched: {r.message}", severity="error")

    @on(StudyEnded)
    def _study_ended(self, message: StudyEnded) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=8)
