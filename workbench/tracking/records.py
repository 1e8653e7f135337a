"""What the store holds, as plain data: run records, studies, metric histories.

Nothing here imports MLflow (the faces import these types while they paint their
first frame); the functions that turn MLflow entities into these shapes take the
entity as an argument.

A *run record* is a plain dict (:class:`RunRecord`)::

    {"run_id", "run_name", "status", "params": {name: str}, "metrics": {name: float},
     "tags": {name: str}, "experiment_id", "start_time" (ms, 0 if unknown),
     "parent_run_id" (None for a top-level run)}

plus ``epoch`` (the last logged epoch) on the records of active runs.
``metrics`` holds each metric's *latest* value (what MLflow's search returns):
right for the ``final/*`` metrics, which are logged once; per-epoch curves come
from a *history*.

A *history* is ``{metric: (steps, values)}``, two lists sorted by step (step =
epoch, 1-based): the one curve shape every chart reads. Pitfall: a metric logged
twice at one step (a resumed run re-running an epoch) keeps the later point.

A *study* is a parent run (tag ``study.kind = parent``) with one child per (cell,
seed) (tag ``mlflow.parentRunId``); :func:`group_items` turns a flat list of
records into :class:`Item` s: studies with their children, and stand-alone runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, TypedDict

from workbench.engine.curves import Curves as History  # the one curve shape (engine/curves.py)

# Set by the writer in the same log_batch as each epoch's metrics, so that one search of
# the active runs tells every run's epoch (no metric-history query per run).
EPOCH_TAG = "workbench.epoch"
# Runs logged before EPOCH_TAG existed: their epoch is the step of this metric's latest point.
EPOCH_METRIC = "backbone/train_loss"



class StoreError(LookupError):
    """Something asked of the store is not there (a run, an experiment, an artifact).
    The message is one line, fit for a CLI error."""


class RunRecord(TypedDict, total=False):
    run_id: str
    run_name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    experiment_id: str
    start_time: int
    parent_run_id: Optional[str]
    epoch: int  # active runs only


def run_record(run) -> RunRecord:
    """An MLflow ``Run`` as a plain run record (see the module docstring)."""
    tags = dict(run.data.tags)
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": tags,
        "experiment_id": run.info.experiment_id,
        "start_time": run.info.start_time or 0,
        "parent_run_id": tags.get("mlflow.parentRunId"),
    }


def epoch_of(run) -> int:
    """The last epoch an MLflow ``Run`` logged: its :data:`EPOCH_TAG`, else the step of its
    latest :data:`EPOCH_METRIC` point (a search result carries each metric's latest point,
    step included: ``run.data.metrics`` drops the steps, ``run.data.to_proto()`` keeps
    them), else 0."""
    tag = run.data.tags.get(EPOCH_TAG)
    if tag is not None:
        try:
            return int(tag)
        except ValueError:
            pass
    steps = [m.step for m in run.data.to_proto().metrics if m.key == EPOCH_METRIC]
    return max(steps, default=0)


def curve(points: Iterable[Any]) -> tuple[list[int], list[float]]:
    """MLflow ``Metric`` points of one metric as ``(steps, values)`` sorted by step; of two
    points at one step the later (by timestamp; in logging order on a tie) wins."""
    by_step: dict[int, tuple[int, float]] = {}
    for m in points:
        old = by_step.get(m.step)
        if old is None or m.timestamp >= old[0]:
            by_step[m.step] = (m.timestamp, m.value)
    steps = sorted(by_step)
    return [int(s) for s in steps], [float(by_step[s][1]) for s in steps]


# ----------------------------------------------------------------------------- studies


@dataclass
class Item:
    """A run or a study in the store (one line of the Compare screens)."""

    kind: str  # run | study
    run_id: str
    name: str
    status: str
    experiment_id: str
    record: dict[str, Any]
    children: list[dict[str, Any]] = field(default_factory=list)

    @property
    def runs(self) -> list[dict[str, Any]]:
        """The runs behind this item: a study's children, or the run itself."""
        return self.children if self.kind == "study" else [self.record]

    def facet(self, key: str) -> set[str]:
        """Values of a tag (preset, variant, model, dataset) over the item's runs."""
        vals = {r.get("tags", {}).get(key, "") for r in self.runs} | {self.record.get("tags", {}).get(key, "")}
        return {v for v in vals if v}

    def label(self) -> str:
        if self.kind == "study":
            return f"{self.name} ({len(self.children)} runs)"
        return self.name


def group_items(records: list[dict[str, Any]]) -> list[Item]:
    """Study parents with their children (oldest first), and stand-alone runs; newest first.
    A run with children counts as a study even without the ``study.kind`` tag; a child
    whose parent is not among ``records`` is left out."""
    children: dict[str, list] = {}
    for r in records:
        if r.get("parent_run_id"):
            children.setdefault(r["parent_run_id"], []).append(r)
    out = []
    for r in sorted(records, key=lambda r: r.get("start_time", 0), reverse=True):
        if r.get("parent_run_id"):
            continue
        study = r["tags"].get("study.kind") == "parent" or r["run_id"] in children
        kids = sorted(children.get(r["run_id"], []), key=lambda c: c.get("start_time", 0))
        plain = r.get("run_name") or r["run_id"][:8]
        name = r["tags"].get("study.name", plain) if study else plain
        out.append(Item("study" if study else "run", r["run_id"], name, r["status"], r["experiment_id"], r, kids))
    return out
