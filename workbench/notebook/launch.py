"""LaunchPanel: pick a preset and its scale, edit the generated form, launch.

The panel only draws :class:`workbench.faces.launch.LaunchController` (shared with the
terminal app's Launch pane): the controller says what a picked preset fills the form with
(the seeds box follows the preset's ``[study] seeds``, its scale's ``study.seeds`` first;
1 without), checks every edit (the one-line message of :func:`workbench.spec.validate`,
the same the CLI prints for ``--set``, shown under the field it names; launch is refused
while any field is invalid), and launches one run or a study (a parent run, a child per
cell and seed) on the same launcher, from a background thread (the kernel stays free).
Errors are keyed by the controller's field paths (the seeds box is ``launch.seeds``).

The launcher is injected (``LaunchPanel(launcher=FakeLauncher())`` in tests); by default a
:class:`~workbench.launch.local.LocalLauncher` whose runs end with the kernel.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import ipywidgets as w

from workbench.faces.launch import EXTRA, SEEDS, DrawsLaunch, LaunchController, LaunchRefused, StudyLaunch, absolute_uri
from workbench.notebook.form import ERROR_STYLE, SpecForm, esc

__all__ = ["LaunchPanel", "absolute_uri"]


class LaunchPanel(DrawsLaunch, w.VBox):
    """The launch form. Read ``spec`` (the validated RunSpec, None while invalid) and
    ``errors`` ({field: message}); call :meth:`launch` (what the button does)."""

    def __init__(self, launcher: Any = None, store_uri: Optional[str] = None, *, preset: str = "quickstart",
                 scale: Optional[str] = None, seeds: Optional[int] = None, preview: bool = True,
                 workers: Optional[int] = None):
        from workbench.presets import preset_names, read_preset

        read_preset(preset)  # an unknown preset stops here, with one line naming the choices
        if launcher is None:
            from workbench.launch.local import LocalLauncher

            launcher = LocalLauncher(workers=workers)
        self.controller = LaunchController(launcher, store_uri, preset, scale)
        self.spec = None
        self.errors: dict[str, str] = {}
        self.launched: list[Any] = []  # handles of single runs, StudyLaunch of studies
        self.on_study_end: Optional[Callable[[Any], None]] = None  # called with the StudyResult (None on error)
        self.show_preview = preview
        self._filling = False

        style = {"description_width": "60px"}
        self.preset_picker = w.Dropdown(options=preset_names(), value=preset, description="preset", style=style,
                                        tooltip="One experiment of the paper, or a smoke-sized default")
        self.scale_picker = w.Dropdown(options=[("full size", None)], value=None, description="scale", style=style,
                                       tooltip="Scale of the preset (smoke = minutes on a CPU)")
        self.seeds = w.IntText(value=1 if seeds is None else seeds, description="seeds", style=style,
                               layout=w.Layout(width="140px"),
                               tooltip="1 launches one run; more launch a study (one child per seed); "
                                       "set from the preset's [study] seeds when a preset is picked")
        self.seeds_message = w.HTML("", layout=w.Layout(display="none"))
        self.preset_help = w.HTML("")
        fields = [f for f in self.controller.fields() if f["path"] not in EXTRA]  # preset/scale/seeds: own widgets
        self.form = SpecForm(fields, self.controller.choices(), on_change=self._changed)
        self.status = w.HTML("")
        self.plan = w.HTML("")
        self.preview = w.Image(format="png", layout=w.Layout(width="440px"))
        self.launch_button = w.Button(description="Launch", button_style="success", icon="play",
                                      tooltip="One run, or a study when seeds > 1 or the preset has a grid")
        self.reset_button = w.Button(description="Reset to preset", icon="undo")
        self.note = w.HTML("")

        self.preset_picker.observe(self._preset_changed, names="value")
        self.scale_picker.observe(self._scale_changed, names="value")
        self.seeds.observe(lambda _: self._filling or self._validate(), names="value")
        self.launch_button.on_click(lambda _: self.launch())
        self.reset_button.on_click(lambda _: self.apply_preset())

        side = w.VBox([w.HTML("<b>LR per epoch, averaging windows shaded</b>"), self.preview, self.plan],
                      layout=w.Layout(display=None if preview else "none"))
        super().__init__([
            w.HBox([self.preset_picker, self.scale_picker, self.seeds]),
            self.seeds_message, self.preset_help,
            w.HBox([self.form.box, side]),
            w.HBox([self.launch_button, self.reset_button]),
            self.status, self.note,
        ])
        self.apply_preset(seeds=seeds)

    # -- preset and scale -----------------------------------------------------------------------
    def apply_preset(self, seeds: Optional[int] = None, preset: Optional[str] = None, scale: Any = ...) -> None:
        """Fill every field, the scale choices and the seeds from the preset (the controller's
        :meth:`~workbench.faces.launch.LaunchController.select`), unless ``seeds`` is given."""
        values = self.controller.select(preset, scale, seeds)
        self._filling = True
        try:
            self.preset_picker.value = values.preset
            self.scale_picker.options = [("full size", None)] + [(s, s) for s in values.scales]
            self.scale_picker.value = values.scale
            self.form.set_values(values.data)
            self.seeds.value = values.seeds
        finally:
            self._filling = False
        self.preset_help.value = f'<i>{esc(self.controller.describe())}</i>'
        self._validate()

    def _preset_changed(self, change) -> None:
        if not self._filling:
            self.apply_preset(preset=change["new"])

    def _scale_changed(self, change) -> None:
        if not self._filling:
            self.apply_preset(scale=change["new"])

    # -- validation ------------------------------------------------------------------------------
    def _changed(self, path: str) -> None:
        self._validate()

    def _validate(self):
        data, errors = self.form.collect()
        check = self.controller.check(data, self.seeds.value, errors)
        self.form.show_errors({p: m for p, m in check.errors.items() if p in self.form.fields})
        seeds_error = check.errors.get(SEEDS)
        self.seeds_message.value = f'<span style="{ERROR_STYLE}">✗ {esc(seeds_error)}</span>' if seeds_error else ""
        self.seeds_message.layout.display = None if seeds_error else "none"
        self.errors = check.errors
        self.spec = check.spec
        self.launch_button.disabled = not check.ok
        if check.spec is not None:
            self._show_plan(check.spec)
        else:
            self.plan.value = ""
            self.preview.value = b""
        self._set_status(check.status, ok=check.ok)
        return check

    def _show_plan(self, spec: Any) -> None:
        from workbench.notebook.figures import plan_summary

        self.plan.value = esc(plan_summary(spec))
        if self.show_preview:
            from workbench.notebook.figures import plot_schedule, png

            self.preview.value = png(plot_schedule(spec, width=5.2, height=2.6), dpi=80)

    def _set_status(self, text: str, ok: bool) -> None:
        mark, style = ("✓", "color:#2e7d32") if ok else ("✗", ERROR_STYLE)
        self.status.value = f'<span style="{style}">{mark} {esc(text)}</span>'

    # -- launch ------------------------------------------------------------------------------------
    def launch(self) -> Any:
        """Submit what the form holds: returns the run's handle, the study's
        :class:`~workbench.faces.launch.StudyLaunch` (``join()``, ``is_alive()``), or None
        when a field is invalid or a cell of the study does not validate (nothing is
        launched; the status line says which field)."""
        check = self._validate()
        if not check.ok:
            self.note.value = f'<span style="{ERROR_STYLE}">Nothing launched: fix the field marked ✗ first.</span>'
            return None
        data, _ = self.form.collect()
        try:
            launched = self.controller.launch(data, self.seeds.value, on_study_end=self._study_ended)
        except LaunchRefused as refused:
            return self._refused(refused)
        if launched.kind == "study":
            study = launched.study
            self.note.value = f"Study <b>{esc(study.name)}</b>: {len(study.study.cells)} runs queued (see the Runs tab)."
            self.launched.append(study)
            return study
        self.launched.append(launched.handle)
        self.note.value = f"Queued <b>{esc(launched.key)}</b> (see the Runs tab)."
        return launched.handle

    def _study_ended(self, study: StudyLaunch) -> None:  # on the study's thread: traits only
        text, ok = study.outcome()
        name = esc(study.name)
        body = esc(text).replace(f"Study {name}", f"Study <b>{name}</b>", 1)
        self.note.value = body if ok or study.control.cancelled else f'<span style="{ERROR_STYLE}">{body}</span>'
        if self.on_study_end is not None:
            self.on_study_end(study.result)

    def _refused(self, refused: LaunchRefused) -> None:
        """Nothing launched: the one-line reason under its field (when it names one), in
        the status line and in the note."""
        if refused.field and refused.field in self.form.fields:
            self.form.show_errors({**self.form.errors, refused.field: refused.message})
        self._set_status(f"launch refused: {refused.message}", ok=False)
        self.note.value = f'<span style="{ERROR_STYLE}">Nothing launched: {esc(refused.message)}</span>'
        return None
