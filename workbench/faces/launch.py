"""The launch controller: everything between a face's form and the launcher, once.

Both faces (the terminal app's Launch pane, the notebook's Launch panel) only draw what
:class:`LaunchController` says and hand it what the user typed:

* **preset -> form values**: :meth:`LaunchController.select` picks a preset and a scale
  and returns :class:`FormValues` (the resolved spec dict the form shows, the preset's
  scales, the seeds its ``[study] seeds`` asks for);
* **validate -> (spec, {field: message})**: :meth:`LaunchController.check` turns the
  form's nested spec dict, its parse errors and the seeds into a :class:`Check`: the
  validated RunSpec or the one-line messages of :func:`workbench.spec.validate` (the
  same the CLI prints for ``--set``), each under the field it names (:func:`error_field`:
  the longest field path the message starts with, so ``model.options.nope: ...`` marks
  ``model.options``), and the status line;
* **run or study**: :meth:`LaunchController.launch` submits one run (one seed, no grid)
  or a study (:func:`workbench.launch.study.run_study` on a background thread, the same
  launcher), with one run-key format; a study whose cell does not validate is refused
  with its field (:class:`LaunchRefused`), nothing submitted.

The seeds are one of the form's rows, ``launch.seeds`` (:data:`SEEDS`), in both faces.
Checked here, not in the faces: the device against the launcher's GPUs (``cuda`` on a
machine without one is refused as the CLI refuses it).

No UI toolkit, and nothing heavy at import time: the spec, presets and launch modules
load on first use.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from workbench.faces.forms import (devices_for, launch_grid, launch_summary, lookup, overrides_between, study_seeds,
                                   study_size)

PRESET, SCALE, SEEDS = "launch.preset", "launch.scale", "launch.seeds"
EXTRA = (PRESET, SCALE, SEEDS)
SEEDS_MESSAGE = "seeds: must be at least 1"  # what `workbench study --seeds 0` prints

_launches = itertools.count(1)


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


def error_field(message: str, paths: list[str]) -> Optional[str]:
    """The form field a one-line spec error names (``averaging.start: ...``): the longest
    field path the message's head equals or starts with, so a message about a sub-key
    (``model.options.width: ...``) belongs to its field."""
    head = message.split(":", 1)[0].strip()
    best = None
    for p in paths:
        if head == p or head.startswith(p + "."):
            if best is None or len(p) > len(best):
                best = p
    return best


def absolute_uri(uri: Optional[str]) -> Optional[str]:
    """A relative SQLite store (``sqlite:///mlruns/mlflow.db``) pinned to the folder it
    names now: a run's child process, whose working folder may differ, then logs to the
    file Compare reads. Other URIs are returned as they are."""
    if uri and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:" and not Path(path).is_absolute():
            return f"sqlite:///{Path(path).resolve()}"
    return uri


@dataclass
class FormValues:
    """What a face fills its form with after a preset or scale is picked."""

    preset: str
    scale: Optional[str]
    scales: list[str]
    seeds: int
    data: dict[str, Any]  # the resolved spec dict of the preset at the scale


@dataclass
class Check:
    """The form checked: ``spec`` (None while anything is wrong), ``errors`` (field path ->
    one-line message; ``"spec"`` for a message that names no field of the form), and the
    status line (``status``, ``ok``)."""

    spec: Any
    errors: dict[str, str]
    status: str
    ok: bool
    grid: Optional[dict] = None


class LaunchRefused(Exception):
    """Nothing was launched: ``message`` is one line, ``field`` the form field it names (or None)."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass
class StudyLaunch:
    """A study submitted by :meth:`LaunchController.launch`: its expanded cells, its
    control (``control.cancel()``; the faces' cancel-study reaches it through
    :func:`workbench.launch.study.cancel_study`), and the thread that runs it.
    ``result`` / ``error`` are set when it ends."""

    study: Any
    control: Any
    thread: threading.Thread
    result: Any = None
    error: str = ""

    @property
    def name(self) -> str:
        return self.study.name

    def join(self, timeout: Optional[float] = None) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def outcome(self) -> tuple[str, bool]:
        """(one line saying how the study ended, whether it FINISHED)."""
        if self.error:
            return f"Study {self.name}: {self.error}", False
        r = self.result
        if r is None:
            return f"Study {self.name}: running", False
        if r.status == "FINISHED":
            return f"Study {self.name}: FINISHED, parent run {r.parent_run_id}", True
        if self.control.cancelled:
            return f"Study {self.name}: KILLED ({self.control.reason}), parent run {r.parent_run_id}", False
        bad = [h for h in r.handles if h.status != "FINISHED"]
        why = next((h.error.splitlines()[0] for h in bad if h.error), "")
        kinds = ", ".join(sorted({h.status for h in bad}))
        return (f"Study {self.name}: {r.status} ({len(bad)} of {len(r.handles)} runs {kinds}"
                f"{': ' + why if why else ''}), parent run {r.parent_run_id}"), False


@dataclass
class Launched:
    """What :meth:`LaunchController.launch` submitted: one run (``handle``) or a study."""

    kind: str  # run | study
    summary: str
    handle: Any = None
    study: Optional[StudyLaunch] = None
    key: str = ""
    size: str = ""  # a study's "N configuration(s) × S seed(s) = M runs"


@dataclass
class LaunchController:
    """The launch steps of both faces over one launcher (any object with the
    :class:`~workbench.launch.local.LocalLauncher` surface: ``submit``, ``gpus``) and the
    store runs log to (``store_uri``, pinned with :func:`absolute_uri`)."""

    launcher: Any
    store_uri: Optional[str] = None
    preset: str = "quickstart"
    scale: Optional[str] = None
    paths: list[str] = field(default_factory=list)  # the form's field paths, for error_field

    def __post_init__(self) -> None:
        self.store_uri = absolute_uri(self.store_uri)

    # -- the form ------------------------------------------------------------------------------
    def fields(self) -> list[dict[str, Any]]:
        """Every form row: the launch rows, then the spec's fields (loads the registries,
        hence torch: call it off a UI thread where the first frame matters)."""
        from workbench.presets import preset_names
        from workbench.spec import form_fields

        presets = preset_names()
        if self.preset not in presets:
            from workbench.presets import read_preset

            read_preset(self.preset)  # an unknown name stops here, one line naming the choices
        rows = launch_fields(presets, self.preset, self.scale) + form_fields()
        self.paths = [f["path"] for f in rows if f["path"] != "preset"]
        return rows

    def choices(self) -> dict[str, list]:
        """Suggestions the form offers beyond the schema's choices (the device field)."""
        return {"device": devices_for(self.launcher)}

    def describe(self) -> str:
        from workbench.presets import describe

        return describe(self.preset)

    def select(self, preset: Optional[str] = None, scale: Any = ..., seeds: Optional[int] = None) -> FormValues:
        """Pick a preset (and a scale; ``...`` keeps the current one where the preset has
        it): the values to fill the form with. Raises SpecError for a broken preset."""
        from workbench.presets import read_preset, scales

        raw = read_preset(preset or self.preset)
        self.preset = preset or self.preset
        options = scales(raw)
        want = self.scale if scale is ... else scale
        self.scale = want if want in options else None
        n = study_seeds(raw, self.scale) if seeds is None else seeds
        return FormValues(self.preset, self.scale, options, n, self.base())

    def base(self) -> dict[str, Any]:
        """The preset's resolved spec dict at the scale (what the form starts from)."""
        from workbench.presets import read_preset, resolve_dict

        return resolve_dict(read_preset(self.preset), None, self.scale)

    def _spec_data(self, data: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in data.items() if k != "launch"}
        out["preset"] = self.preset  # the picker's field, not a form row
        return out

    def grid(self, data: Optional[dict[str, Any]] = None) -> Optional[dict]:
        """The grid a launch expands (None without a ``[grid]``), the fields the form's
        ``data`` changed from the preset pinned (:func:`workbench.faces.forms.launch_grid`)."""
        from workbench.spec import form_fields

        return launch_grid(self.preset, self.scale, form_fields(), None if data is None else self._spec_data(data))

    # -- checking --------------------------------------------------------------------------------
    def check(self, data: dict[str, Any], seeds: Any, parse_errors: Optional[dict[str, str]] = None) -> Check:
        """The form's nested spec dict (a ``launch`` section is ignored), the seeds and the
        text that did not parse -> :class:`Check`."""
        from workbench.spec import SpecError, validate

        errors = dict(parse_errors or {})
        spec = None
        if not any(p not in EXTRA for p in errors):
            try:
                spec = validate(self._spec_data(data))
                self._check_device(spec)
            except SpecError as err:
                spec = None
                path = error_field(str(err), self.paths)
                errors[path or "spec"] = str(err)
        if SEEDS not in errors and not (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1):
            errors[SEEDS] = SEEDS_MESSAGE
        if errors:
            where = ", ".join(p for p in errors if p != "spec")
            text = f"launch blocked: fix {where} (message under it)" if where else f"launch blocked: {errors['spec']}"
            return Check(None, errors, text, False)
        grid = self.grid(data)
        return Check(spec, {}, launch_summary(spec, seeds, grid), True, grid)

    def _check_device(self, spec: Any) -> None:
        from workbench.spec import SpecError

        gpus = list(getattr(self.launcher, "gpus", []) or [])
        dev = spec.device
        if dev.startswith("cuda") and not gpus:
            raise SpecError(f"device: {dev} asked for, but no CUDA device is available")
        if dev.startswith("cuda:") and int(dev[5:]) not in gpus:
            raise SpecError(f"device: {dev} asked for, but the launcher has GPUs {', '.join(map(str, gpus))}")

    # -- launching -------------------------------------------------------------------------------
    def run_key(self, spec: Any) -> str:
        """The launcher key of a single run launched from a face."""
        return f"{spec.preset or 'spec'}-{spec.averaging.variant}-s{spec.seed} #{next(_launches)}"

    def launch(self, data: dict[str, Any], seeds: int, *,
               on_study_end: Optional[Callable[[StudyLaunch], None]] = None) -> Launched:
        """Submit what the form holds: one run, or a study (more seeds, or a grid preset)
        on a background thread. Raises :class:`LaunchRefused` when the form does not check
        or a cell of the study does not validate (nothing is submitted)."""
        from workbench.spec import SpecError

        if not lookup(data, "tracking.uri", None) and self.store_uri:  # runs log where the faces read
            data = {**data, "tracking": {**data.get("tracking", {}), "uri": self.store_uri}}
        check = self.check(data, seeds)
        if not check.ok:
            first = next(iter(check.errors))
            raise LaunchRefused(check.errors[first], None if first == "spec" else first)
        data = self._spec_data(data)
        if seeds > 1 or check.grid:
            base = self.base()
            from workbench.spec import form_fields

            overrides = overrides_between(form_fields(), base, data)
            try:
                study = self._start_study(seeds, overrides, on_study_end)
            except SpecError as err:  # a cell of the grid the form's values do not fit
                raise LaunchRefused(str(err), error_field(str(err), self.paths)) from None
            return Launched("study", check.status, study=study, size=study_size(check.grid, seeds))
        spec = check.spec
        key = self.run_key(spec)
        try:
            handle = self.launcher.submit(spec, key=key)
        except Exception as err:  # e.g. a launcher that was shut down
            raise LaunchRefused(f"{type(err).__name__}: {err}") from None
        return Launched("run", check.status, handle=handle, key=key)

    def _start_study(self, seeds: int, overrides: dict[str, Any],
                     on_end: Optional[Callable[[StudyLaunch], None]]) -> StudyLaunch:
        from workbench.launch.study import StudyControl, load_study, run_study

        study = load_study(self.preset, seeds=seeds, scale=self.scale, overrides=overrides)  # validated cells
        launch = StudyLaunch(study, StudyControl(), threading.Thread())

        def target() -> None:
            try:
                launch.result = run_study(study, launcher=self.launcher, control=launch.control)
            except Exception as err:  # reported by the face; the app or kernel carries on
                launch.error = f"{type(err).__name__}: {err}"
            finally:
                if on_end is not None:
                    on_end(launch)

        # A daemon thread: an app or kernel that exits never hangs on runs left running.
        launch.thread = threading.Thread(target=target, name=f"study-{study.name}", daemon=True)
        launch.thread.start()
        return launch


def _from_controller(name: str) -> property:
    return property(lambda self: getattr(self.controller, name), doc=f"The controller's ``{name}``.")


class DrawsLaunch:
    """Mixin of a face's launch form: the controller's state read through the form (a
    face sets ``self.controller``)."""

    controller: LaunchController
    launcher = _from_controller("launcher")
    store_uri = _from_controller("store_uri")
    preset = _from_controller("preset")
    scale = _from_controller("scale")
