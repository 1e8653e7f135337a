"""View-models of runs for both faces: plain data the widgets render, no UI toolkit, no torch.

A :class:`RunRow` is one line of the Runs screen, built either from a launcher
``RunHandle`` (a run this session started: live events) or from an MLflow run
record (a run still RUNNING from an earlier session, polled from the store).
An :class:`~workbench.tracking.records.Item` (the store's own type, re-exported
here) is one line of the Compare screen: a run, or a study (its parent run and its
children). Statistics never happen here: mean ± std tables come from
:mod:`workbench.analysis` (:func:`stats_tables` and :func:`config_histories` only
pick the runs and group them, the same for the terminal app and the notebook).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from workbench.tracking.records import Item  # the Compare items: runs and studies of the store

if TYPE_CHECKING:
    from workbench.engine.curves import Curves

BACKBONE_TA = "backbone/test_acc"
AVERAGE_TA = "average/test_acc"
ACTIVE = ("QUEUED", "RUNNING")
# Fields that differ between seeds of one configuration, or say nothing about it.
NOISE_KEYS = ("seed", "description", "tracking.run_name", "tracking.uri", "preset")


@dataclass
class RunRow:
    key: str
    name: str
    status: str = "QUEUED"
    epoch: int = 0
    epochs: int = 0
    backbone_acc: Optional[float] = None
    average_acc: Optional[float] = None
    eta_s: Optional[float] = None
    run_id: Optional[str] = None
    experiment_id: Optional[str] = None
    source: str = "session"  # session: started here; store: found RUNNING in the store
    error: str = ""
    # {metric: (steps, values)}: the launcher's live curves of a session run, the store's
    # history of a store run; the charts read it as is.
    curves: Curves = field(default_factory=dict)
    spec: Any = None  # the RunSpec of a session run
    parent_run_id: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        return min(1.0, self.epoch / self.epochs) if self.epochs else 0.0


def row_from_handle(handle) -> RunRow:
    """A launcher handle as a row; copies what may change under the launcher's threads."""
    m = dict(handle.metrics)
    return RunRow(
        key=handle.key, name=handle.key, status=handle.status, epoch=handle.epoch, epochs=handle.epochs,
        backbone_acc=m.get(BACKBONE_TA, handle.final.get("final/backbone_test_acc")),
        average_acc=m.get(AVERAGE_TA, handle.final.get("final/average_test_acc")),
        eta_s=handle.eta_s if handle.status == "RUNNING" else None, run_id=handle.run_id,
        experiment_id=handle.experiment_id, source="session", error=handle.error,
        curves=dict(handle.curves), spec=handle.spec, parent_run_id=handle.parent_run_id,
    )


def row_from_record(rec: Mapping[str, Any], curves: Optional[Curves] = None) -> RunRow:
    """A store run record (see :mod:`workbench.tracking.store`) as a row."""
    metrics = rec.get("metrics", {})
    params = rec.get("params", {})
    try:
        epochs = int(params.get("budget.epochs", 0))
    except ValueError:
        epochs = 0
    return RunRow(
        key=f"store:{rec['run_id']}", name=rec.get("run_name") or rec["run_id"][:8], status=rec.get("status", "RUNNING"),
        epoch=int(rec.get("epoch", 0)), epochs=epochs, backbone_acc=metrics.get(BACKBONE_TA),
        average_acc=metrics.get(AVERAGE_TA), run_id=rec["run_id"], experiment_id=rec.get("experiment_id"),
        source="store", error=rec.get("tags", {}).get("error", ""), curves=dict(curves or {}),
        parent_run_id=rec.get("parent_run_id"),
    )


class RunBoard:
    """Every row the Runs screen shows, in arrival order; owned by the app (the notebook's
    Runs panel has one too).

    A launcher handle's row goes in with :meth:`put_handle`, under a key no other run of
    the board has: a study launched twice submits children with the same launcher keys
    (``quickstart seed=0``), and the second must not take the first one's rows."""

    def __init__(self) -> None:
        self.rows: dict[str, RunRow] = {}
        self.handles: dict[str, Any] = {}  # row key -> the launcher handle of a session row
        self._keys: dict[int, tuple[Any, str]] = {}  # id(handle) -> (handle, its row key)

    def put(self, row: RunRow) -> None:
        self.rows[row.key] = row

    def key_for(self, handle: Any) -> str:
        """The row key of a launcher handle: its ``key``, or ``key (2)``, ``key (3)``… when
        another run of the board has it; the same for the handle's life."""
        known = self._keys.get(id(handle))
        if known is not None and known[0] is handle:
            return known[1]
        key, n = handle.key, 2
        while key in self.rows or key in self.handles:
            key, n = f"{handle.key} ({n})", n + 1
        self._keys[id(handle)] = (handle, key)  # the handle is kept: its id is never reused meanwhile
        self.handles[key] = handle
        return key

    def put_handle(self, handle: Any) -> RunRow:
        """Put (or refresh) the row of a launcher handle; returns it."""
        key = self.key_for(handle)
        row = row_from_handle(handle)
        row.key = row.name = key
        self.put(row)
        return row

    def handle(self, key: str) -> Any:
        """The launcher handle behind a session row (None for a store row)."""
        return self.handles.get(key)

    def get(self, key: str) -> Optional[RunRow]:
        return self.rows.get(key)

    def active(self, source: Optional[str] = None) -> list[RunRow]:
        return [r for r in self.rows.values() if r.active and (source is None or r.source == source)]

    def has_run(self, run_id: str) -> bool:
        return any(r.run_id == run_id for r in self.rows.values())


# ----------------------------------------------------------------------------- compare items


FACETS = ("preset", "variant", "model", "dataset", "status")


def matches(item: Item, filters: Mapping[str, Optional[str]]) -> bool:
    for key, want in filters.items():
        if not want:
            continue
        have = {item.status} if key == "status" else item.facet(key)
        if want not in have:
            return False
    return True


def facet_values(items: Iterable[Item]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {k: set() for k in FACETS}
    for it in items:
        out["status"].add(it.status)
        for k in FACETS[:-1]:
            out[k] |= it.facet(k)
    return {k: sorted(v) for k, v in out.items()}


def item_params(item: Item) -> dict[str, str]:
    """The item's spec params; for a study, a field whose value varies over the children
    shows as ``{a, b}``."""
    runs = item.runs or [item.record]
    keys = dict.fromkeys(k for r in runs for k in r.get("params", {}) if not k.startswith(("resolved.", "study.")))
    out = {}
    for k in keys:
        vals = list(dict.fromkeys(r.get("params", {}).get(k, "–") for r in runs))
        out[k] = vals[0] if len(vals) == 1 else "{" + ", ".join(vals) + "}"
    return out


def param_diff(items: list[Item]) -> tuple[list[str], dict[str, list[str]]]:
    """(keys, {key: value per item}) for the spec fields whose values differ between the
    items (``iters_per_epoch`` and the run's resolved settings count as well)."""
    params = [item_params(it) for it in items]
    keys = sorted(set().union(*params)) if params else []
    rows = {}
    for k in keys:
        vals = [p.get(k, "–") for p in params]
        if len(set(vals)) > 1:
            rows[k] = vals
    return list(rows), rows


def grouping_keys(runs: list[Mapping[str, Any]]) -> list[str]:
    """Params that tell configurations apart among ``runs`` (what a mean ± std table's rows
    are keyed by): fields that differ, except seeds and names."""
    keys = sorted({k for r in runs for k in r.get("params", {})})
    out = []
    for k in keys:
        if k in NOISE_KEYS or k.startswith(("resolved.", "study.")) or k == "iters_per_epoch":
            continue
        if len({r.get("params", {}).get(k) for r in runs}) > 1:
            out.append(k)
    return out


METRICS = (("Backbone TA", "final/backbone_test_acc"), ("Average TA", "final/average_test_acc"))


def stats_tables(items: list[Item]) -> tuple[list[tuple[str, Any]], str]:
    """``([(title, Table)], note)``: the analysis' mean ± std tables over the FINISHED
    runs behind ``items``, one per final metric in :data:`METRICS` that they have, rows
    keyed by the fields that tell configurations apart (:func:`grouping_keys`)."""
    from workbench.analysis.tables import aggregate
    from workbench.analysis.runs import AnalysisError

    runs = [r for it in items for r in it.runs if r.get("status") == "FINISHED"]
    if not runs:
        return [], "no finished runs among the selection"
    keys = grouping_keys(runs)
    out = []
    for title, metric in METRICS:
        try:
            out.append((title, aggregate(runs, rows=keys or None, cols=None, metric=metric, none_metric=None)))
        except AnalysisError:
            continue
    return out, ""


def config_histories(store: Any, items: list[Item], max_groups: int = 8) -> dict[str, list[dict]]:
    """``{configuration label: [history per run]}``: the backbone's and the average's test
    accuracy (``store.history``) of the runs behind ``items``, grouped like the rows of
    :func:`stats_tables` (labels in the paper's names), the first ``max_groups`` groups.
    A run that logged nothing has an empty history."""
    from workbench.analysis.tables import PAPER_NAMES
    from workbench.analysis.runs import group_runs, param_of

    runs = [r for it in items for r in it.runs]
    keys = grouping_keys(runs)

    def label(r: dict) -> str:
        return " / ".join(PAPER_NAMES.get(v, v) for v in (str(param_of(r, k)) for k in keys)) or "all"

    return {name: [store.history(r["run_id"], (BACKBONE_TA, AVERAGE_TA)) for r in group]
            for name, group in list(group_runs(runs, label).items())[:max_groups]}


# ----------------------------------------------------------------------------- formatting


def fmt_acc(v: Optional[float]) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def fmt_eta(s: Optional[float]) -> str:
    if s is None:
        return ""
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


_EIGHTHS = " ▏▎▍▌▋▊▉█"


def progress_bar(frac: float, width: int = 10) -> str:
    """A bar of ``width`` cells with eighth-block precision."""
    frac = max(0.0, min(1.0, frac))
    full, rem = divmod(int(round(frac * width * 8)), 8)
    bar = "█" * full + (_EIGHTHS[rem] if rem and full < width else "")
    return bar + "·" * (width - len(bar))


STATUS_STYLE = {"QUEUED": "dim", "RUNNING": "bold yellow", "FINISHED": "green", "FAILED": "bold red",
                "KILLED": "magenta", "SCHEDULED": "dim"}


def show_value(v: Any) -> str:
    """A form value as text: lists and dicts as JSON (also valid TOML)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)
