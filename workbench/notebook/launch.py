"""LaunchPanel: pick a preset and its scale, edit the generated form, launch.

Every edit re-validates with :func:`workbench.spec.validate`; its one-line message (the
same the CLI prints for ``--set``) names the field and is shown under that field, and
launch is refused while any field is invalid. The seeds box follows the preset's
``[study] seeds`` (its scale's ``study.seeds`` first; 1 without). One seed and no
``[grid]``: one run submitted to the launcher. More seeds, or a preset with a grid: a
study through :func:`workbench.launch.study.run_study` (a parent run, a child per cell
and seed) on the same launcher, from a background thread (the kernel stays free); the
status line counts its runs from the grid it expands (:func:`workbench.faces.forms.launch_grid`).

The launcher is injected (``LaunchPanel(launcher=FakeLauncher())`` in tests); by default a
:class:`~workbench.launch.local.LocalLauncher` whose runs end with the kernel.
"""
from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import ipywidgets as w

from workbench.faces.forms import devices_for, launch_grid, launch_summary, lookup, overrides_between, study_seeds
from workbench.notebook.form import ERROR_STYLE, SpecForm, esc, error_field

_launches = itertools.count(1)


def absolute_uri(uri: Optional[str]) -> Optional[str]:
    """A relative SQLite store (``sqlite:///mlruns/mlflow.db``) pinned to the folder it
    names now: a run's child process, whose working folder may differ, then logs to the
    file Compare reads. Other URIs are returned as they are."""
    if uri and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:" and not Path(path).is_absolute():
            return f"sqlite:///{Path(path).resolve()}"
    return uri


class LaunchPanel(w.VBox):
    """The launch form. Read ``spec`` (the validated RunSpec, None while invalid) and
    ``errors`` ({field: message}); call :meth:`launch` (what the button does)."""

    def __init__(self, launcher: Any = None, store_uri: Optional[str] = None, *, preset: str = "quickstart",
                 scale: Optional[str] = None, seeds: Optional[int] = None, preview: bool = True,
                 workers: Optional[int] = None):
        from workbench.presets import describe, preset_names, read_preset
        from workbench.spec import form_fields

        read_preset(preset)  # an unknown preset stops here, with one line naming the choices
        if launcher is None:
            from workbench.launch.local import LocalLauncher

            launcher = LocalLauncher(workers=workers)
        self.launcher = launcher
        self.store_uri = absolute_uri(store_uri)
        self.preset = preset
        self.scale = scale
        self.spec = None
        self.errors: dict[str, str] = {}
        self.launched: list[Any] = []  # handles of single runs, threads of studies
        self.on_study_end: Optional[Callable[[Any], None]] = None  # called with the StudyResult (None on error)
        self.show_preview = preview
        self._describe = describe
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
        self.form = SpecForm(form_fields(), {"device": devices_for(launcher)}, on_change=self._changed)
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
    def _base(self) -> dict[str, Any]:
        from workbench.presets import read_preset, resolve_dict

        return resolve_dict(read_preset(self.preset), None, self.scale)

    def _grid(self, data: Optional[dict[str, Any]] = None) -> Optional[dict]:
        """The grid a launch expands (None without a ``[grid]``), the fields the form's
        ``data`` changed from the preset pinned: :func:`workbench.faces.forms.launch_grid`."""
        return launch_grid(self.preset, self.scale, list(self.form.fields.values()), data)

    def apply_preset(self, seeds: Optional[int] = None) -> None:
        """Scale choices of the preset, then every spec field from it, and the seeds from
        its ``[study] seeds`` (:func:`workbench.faces.forms.study_seeds`) unless ``seeds`` is given."""
        from workbench.presets import read_preset, scales

        raw = read_preset(self.preset)
        options = scales(raw)
        self.scale = self.scale if self.scale in options else None
        self._filling = True
        try:
            self.scale_picker.options = [("full size", None)] + [(s, s) for s in options]
            self.scale_picker.value = self.scale
            self.form.set_values(self._base())
            self.seeds.value = study_seeds(raw, self.scale) if seeds is None else seeds
        finally:
            self._filling = False
        self.preset_help.value = f'<i>{esc(self._describe(self.preset))}</i>'
        self._validate()

    def _preset_changed(self, change) -> None:
        if not self._filling:
            self.preset = change["new"]
            self.apply_preset()

    def _scale_changed(self, change) -> None:
        if not self._filling:
            self.scale = change["new"]
            self.apply_preset()

    # -- validation ------------------------------------------------------------------------------
    def _changed(self, path: str) -> None:
        self._validate()

    def _collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        data, errors = self.form.collect()
        data["preset"] = self.preset  # the picker's field, not a form row
        return data, errors

    def _validate(self) -> None:
        from workbench.spec import SpecError, validate

        data, errors = self._collect()
        spec, other = None, ""
        if not errors:
            try:
                spec = validate(data)
            except SpecError as err:
                path = error_field(str(err), list(self.form.fields))
                if path:
                    errors[path] = str(err)
                else:
                    other = str(err)
        self.form.show_errors(errors)
        seeds = self.seeds.value
        if not (isinstance(seeds, int) and seeds >= 1):
            errors["seeds"] = "seeds: must be at least 1"  # the CLI's `workbench study --seeds 0` message
        self.seeds_message.value = (f'<span style="{ERROR_STYLE}">✗ {esc(errors["seeds"])}</span>'
                                    if "seeds" in errors else "")
        self.seeds_message.layout.display = None if "seeds" in errors else "none"
        if other:
            errors["spec"] = other
        self.errors = errors
        self.spec = spec if not errors else None
        self.launch_button.disabled = bool(errors)
        if spec is not None:
            self._show_plan(spec)
        else:
            self.plan.value = ""
            self.preview.value = b""
        if errors:
            where = ", ".join(p for p in errors if p != "spec")
            text = f"launch blocked: fix {where} (message under it)" if where else f"launch blocked: {other}"
            self._set_status(text, ok=False)
        else:
            self._set_status(launch_summary(spec, seeds, self._grid(data)), ok=True)

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
        """Submit what the form holds: returns the run's handle, the study's thread, or
        None when a field is invalid or a cell of the study does not validate (nothing
        is launched; the status line says which field)."""
        self._validate()
        if self.spec is None:
            self.note.value = f'<span style="{ERROR_STYLE}">Nothing launched: fix the field marked ✗ first.</span>'
            return None
        from workbench.spec import SpecError, validate

        data, _ = self._collect()
        if not lookup(data, "tracking.uri", None) and self.store_uri:
            data.setdefault("tracking", {})["uri"] = self.store_uri  # runs log where Compare reads
        seeds = self.seeds.value
        if seeds > 1 or self._grid():
            fields = list(self.form.fields.values())
            try:
                return self._launch_study(seeds, overrides_between(fields, self._base(), data))
            except SpecError as err:  # a cell of the grid the form's values do not fit
                return self._refused(str(err))
        spec = validate(data)
        key = f"{spec.preset or 'spec'}-{spec.averaging.variant}-s{spec.seed} #{next(_launches)}"
        try:
            handle = self.launcher.submit(spec, key=key)
        except Exception as err:  # e.g. a launcher that was shut down
            return self._refused(f"{type(err).__name__}: {err}")
        self.launched.append(handle)
        self.note.value = f"Queued <b>{esc(key)}</b> (see the Runs tab)."
        return handle

    def _refused(self, message: str) -> None:
        """Nothing launched: the one-line reason under its field (when it names one), in
        the status line and in the note."""
        path = error_field(message, list(self.form.fields))
        if path:
            self.form.show_errors({**self.form.errors, path: message})
        self._set_status(f"launch refused: {message}", ok=False)
        self.note.value = f'<span style="{ERROR_STYLE}">Nothing launched: {esc(message)}</span>'
        return None

    def _launch_study(self, seeds: int, overrides: dict[str, Any]) -> threading.Thread:
        from workbench.launch.study import StudyControl, load_study, run_study

        study = load_study(self.preset, seeds=seeds, scale=self.scale, overrides=overrides)  # validated cells
        control = StudyControl()  # the Runs panel's Cancel study reaches it through cancel_study

        def target() -> None:
            r = None
            try:
                r = run_study(study, launcher=self.launcher, control=control)
                if r.status == "FINISHED":
                    self.note.value = f"Study <b>{esc(study.name)}</b>: {r.status}, parent run {r.parent_run_id}"
                elif control.cancelled:
                    self.note.value = (f"Study <b>{esc(study.name)}</b>: KILLED ({esc(control.reason)}), "
                                       f"parent run {r.parent_run_id}")
                else:
                    bad = [h for h in r.handles if h.status != "FINISHED"]
                    why = next((h.error.splitlines()[0] for h in bad if h.error), "")
                    self.note.value = (f'<span style="{ERROR_STYLE}">Study <b>{esc(study.name)}</b>: {r.status} '
                                       f'({len(bad)} of {len(r.handles)} runs {esc(", ".join(sorted({h.status for h in bad})))}'
                                       f'{": " + esc(why) if why else ""}), parent run {r.parent_run_id}</span>')
            except Exception as err:  # reported in the panel; the kernel carries on
                self.note.value = (f'<span style="{ERROR_STYLE}">Study {esc(study.name)}: '
                                   f'{esc(type(err).__name__)}: {esc(err)}</span>')
            finally:
                if self.on_study_end is not None:
                    self.on_study_end(r)

        self.note.value = f"Study <b>{esc(study.name)}</b>: {len(study.cells)} runs queued (see the Runs tab)."
        thread = threading.Thread(target=target, name=f"study-{study.name}", daemon=True)
        thread.study = study  # type: ignore[attr-defined]
        thread.control = control  # type: ignore[attr-defined]
        self.launched.append(thread)
        thread.start()
        return thread
