"""Studies: a grid over spec fields x seeds, as one MLflow parent run with a child per cell.

A study comes from a preset (or TOML file) with a ``[grid]`` table (dotted field
-> list of values, crossed), optional ``[[cases]]`` (a list of tables of dotted
overrides, crossed with the grid: for cells whose settings differ in more than
one field) and a ``[study]`` table (``seeds = N``). A preset without a grid is a
one-cell study. Scale tables may override grid lists with ``"grid.<field>"`` keys
and the seed count with ``"study.seeds"``.

In MLflow: one parent run (tags ``study.name``, ``study.kind = parent``; params:
the grid, the seeds, the number of children, the git commit; artifact
``study.toml``) and one child per (cell, seed) with the tag ``mlflow.parentRunId``
plus ``study.cell`` and ``study.seed``. ``resume`` keeps children that FINISHED
and runs the rest (a child left RUNNING by a killed launcher is marked KILLED).

Cancel: :meth:`StudyControl.cancel` (or :func:`cancel_study` by parent run id, what the
faces call) stops a running study as a whole: every child still queued or running is
cancelled, and the parent ends KILLED with the reason in its ``error`` tag. A study
whose children were cancelled one by one (none FAILED) ends KILLED as well.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from workbench.presets import read_preset, resolve_dict, study_shape
from workbench.spec import RunSpec, SpecError, apply_overrides, validate
from workbench.tracking.queries import children, find_parent


@dataclass
class Cell:
    key: str  # e.g. "averaging.variant=swa model.name=vgg16" ("" for a one-cell study)
    values: dict[str, Any]
    seed: int
    spec: RunSpec


@dataclass
class Study:
    name: str
    grid: dict[str, list]
    cases: list[dict[str, Any]]
    seeds: list[int]
    cells: list[Cell]
    base: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def configurations(self) -> list[str]:
        return list(dict.fromkeys(c.key for c in self.cells))


def _fmt(v: Any) -> str:
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)


def cell_key(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def load_study(name_or_path: str, seeds: Optional[int] = None, scale: Optional[str] = None,
               overrides: Optional[list[str]] = None) -> Study:
    """Expand a study into validated cells. Raises SpecError naming the field (and
    the cell) for bad input, before anything runs."""
    data = read_preset(name_or_path)
    grid, meta = study_shape(data, scale)  # the scale's "grid.*" / "study.*" entries applied
    cases = list(data.get("cases") or [{}])
    if scale == "paper" and scale not in (data.get("scales") or {}):  # "paper" is the full size
        data = {**data, "scales": {**(data.get("scales") or {}), scale: {}}}
    base = resolve_dict(data, overrides, scale)  # leaves those entries out of the runs
    n_seeds = seeds or int(meta.get("seeds", 1))
    if n_seeds < 1:
        raise SpecError("seeds: must be at least 1")
    first = int(base.get("seed", 0))
    seed_list = [first + i for i in range(n_seeds)]
    overridden = {o.split("=", 1)[0].strip() for o in (overrides or [])}
    keys = [k for k in grid if k not in overridden]  # a --set pins a grid field to one value
    cells = []
    for case in cases:
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = {**case, **dict(zip(keys, combo))}
            cell_data = apply_overrides(base, values)
            for seed in seed_list:
                cell_data["seed"] = seed
                try:
                    spec = validate(cell_data)
                except SpecError as err:
                    raise SpecError(f"{err} (in cell {cell_key(values) or 'base'}, seed {seed})") from None
                cells.append(Cell(cell_key(values), values, seed, spec))
    name = base.get("preset") or str(name_or_path)
    return Study(name, grid, cases if cases != [{}] else [], seed_list, cells, base)


class StudyControl:
    """A running study, for whoever wants to stop it: :func:`run_study` fills
    ``parent_run_id`` and ``handles`` as they exist and watches :meth:`cancel`."""

    def __init__(self) -> None:
        self.parent_run_id: Optional[str] = None
        self.handles: list = []
        self.launcher: Any = None
        self.reason = ""
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop the study: its queued and running children are cancelled (KILLED), and
        the parent run ends KILLED with ``reason``. Returns at once."""
        if not self._cancel.is_set():
            self.reason = reason
            self._cancel.set()
        self._stop_children()

    def _stop_children(self) -> None:
        launcher = self.launcher
        if launcher is None:
            return
        for h in list(self.handles):
            if not h.done:
                launcher.cancel(h)

    def wait(self, timeout: float) -> bool:
        return self._cancel.wait(timeout)


_running: dict[str, StudyControl] = {}  # parent run id -> control, while run_study runs in this process
_running_lock = threading.Lock()


def running_study(parent_run_id: Optional[str]) -> Optional[StudyControl]:
    """The control of the study with this parent run, while it runs in this process."""
    with _running_lock:
        return _running.get(parent_run_id) if parent_run_id else None


def cancel_study(parent_run_id: Optional[str], reason: str = "cancelled by the user") -> bool:
    """Cancel the study running in this process under ``parent_run_id`` (see
    :meth:`StudyControl.cancel`); False when no such study runs here."""
    control = running_study(parent_run_id)
    if control is None:
        return False
    control.cancel(reason)
    return True


@dataclass
class StudyResult:
    parent_run_id: str
    handles: list = field(default_factory=list)
    skipped: int = 0
    status: str = "FINISHED"


def run_study(study: Study, *, workers: Optional[int] = None, resume: bool | str = False, launcher=None,
              on_event: Optional[Callable] = None, control: Optional[StudyControl] = None) -> StudyResult:
    """Run (or resume) a study through the local launcher; returns when every child is
    done. ``control``: a :class:`StudyControl` whose ``cancel()`` stops the study (the
    result's status is then KILLED); the study is also registered for
    :func:`cancel_study` while it runs."""
    from mlflow.entities import Param, RunTag

    from workbench.launch.local import LocalLauncher
    from workbench.spec import to_toml
    from workbench.tracking.mlflow_sink import client_for, ensure_experiment, git_commit

    tracking = study.cells[0].spec.tracking
    client, uri = client_for(tracking.uri)
    exp_id = ensure_experiment(client, uri, tracking.experiment)
    done: set[tuple[str, int]] = set()
    parent_id = None
    if resume:
        parent_id = resume if isinstance(resume, str) else find_parent(client, exp_id, study.name)
        if parent_id is None:
            raise SpecError(f"--resume: no earlier study named {study.name!r} in experiment {tracking.experiment!r}")
        for child in children(client, parent_id, experiments=[exp_id]):
            k = (child["tags"].get("study.cell", ""), int(child["tags"].get("study.seed", -1)))
            if child["status"] == "FINISHED":
                done.add(k)
            elif child["status"] == "RUNNING":  # orphaned by a killed launcher
                client.set_terminated(child["run_id"], status="KILLED")
        client.set_tag(parent_id, "study.resumed", "true")
        client.update_run(parent_id, status="RUNNING")
    else:
        parent = client.create_run(exp_id, run_name=f"study-{study.name}", tags={
            "study.name": study.name, "study.kind": "parent", "git_commit": git_commit(),
            "preset": study.base.get("preset") or ""})
        parent_id = parent.info.run_id
        params = {"study.grid": json.dumps(study.grid), "study.cases": json.dumps(study.cases),
                  "study.seeds": json.dumps(study.seeds), "study.children": str(len(study.cells)),
                  "study.configurations": str(len(study.configurations))}
        client.log_batch(parent_id, params=[Param(k, v[:6000]) for k, v in params.items()],
                         tags=[RunTag("mlflow.note.content", f"Study {study.name}: {len(study.configurations)} "
                                      f"configuration(s) x {len(study.seeds)} seed(s)")])
        client.log_text(parent_id, to_toml(study.cells[0].spec), "study.toml")
    todo = [c for c in study.cells if (c.key, c.seed) not in done]
    own = launcher is None
    launcher = launcher or LocalLauncher(workers=workers)
    control = control or StudyControl()
    control.parent_run_id, control.launcher = parent_id, launcher
    with _running_lock:
        _running[parent_id] = control
    if on_event is not None:
        launcher.subscribe(on_event)
    handles = control.handles
    try:
        for c in todo:
            if control.cancelled:
                break  # nothing more is submitted
            handles.append(launcher.submit(
                c.spec, key=f"{c.key or study.name} seed={c.seed}", parent_run_id=parent_id,
                tags={"study.name": study.name, "study.cell": c.key, "study.seed": str(c.seed)}))
        stopped = False
        while not all(h.done for h in handles):
            if not control.cancelled:
                control.wait(0.2)
            elif not stopped:  # once more: a child submitted while cancel() ran
                control._stop_children()
                stopped = True
            else:
                time.sleep(0.1)
    except KeyboardInterrupt:
        for h in handles:
            launcher.cancel(h)
        _kill_parent(client, parent_id, "interrupted")
        raise
    finally:
        with _running_lock:
            _running.pop(parent_id, None)
        if own:
            launcher.shutdown(cancel=True)
    statuses = {h.status for h in handles}
    if control.cancelled:
        status = "KILLED"
        _kill_parent(client, parent_id, control.reason or "cancelled")
    else:
        status = "FAILED" if "FAILED" in statuses else "KILLED" if "KILLED" in statuses else "FINISHED"
        client.set_terminated(parent_id, status=status)
    return StudyResult(parent_id, list(handles), len(study.cells) - len(todo), status)


def _kill_parent(client, parent_id: str, reason: str) -> None:
    """Mark the study's parent run KILLED, its reason in the ``error`` tag (as a child's)."""
    try:
        client.set_tag(parent_id, "error", f"study {reason}"[:5000])
    finally:
        client.set_terminated(parent_id, status="KILLED")
