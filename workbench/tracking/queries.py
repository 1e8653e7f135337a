"""Every query of runs in the MLflow store: one paginated search and what is built on it.

Each function takes an ``MlflowClient`` (:func:`workbench.tracking.mlflow_sink.client_for`)
and returns plain data (:mod:`workbench.tracking.records`). Missing runs and
experiments raise :class:`~workbench.tracking.records.StoreError` with a one-line
message. MLflow is never imported here: the client brings it.

MLflow's search grammar has ``and`` only (no ``or``, no parentheses); tag names
with dots need backquotes (``tags.`study.kind```), ``mlflow.parentRunId`` does not.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

from workbench.tracking.records import History, RunRecord, StoreError, curve, epoch_of, run_record

PAGE_SIZE = 1000  # MLflow's most results per page
NEWEST_FIRST = ("attributes.start_time DESC",)
OLDEST_FIRST = ("attributes.start_time ASC",)
T = TypeVar("T")


def all_of(*clauses: str) -> str:
    """Filter clauses ANDed (empty ones dropped)."""
    return " and ".join(c for c in clauses if c)


def experiment_ids(client) -> list[str]:
    """The ids of every active experiment, through all pages."""
    out, token = [], None
    while True:
        page = client.search_experiments(max_results=PAGE_SIZE, page_token=token)
        out.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return out


def experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise StoreError(f"experiment {name!r}: not found in the tracking store")
    return exp.experiment_id


def search(client, experiments: Optional[Sequence[str]] = None, filter_string: str = "", *,
           order_by: Sequence[str] = NEWEST_FIRST, limit: Optional[int] = None, page_size: int = PAGE_SIZE,
           record: Callable[[Any], T] = run_record) -> list[T]:
    """Runs matching ``filter_string`` in ``experiments`` (ids; None: every experiment, one
    more query), in ``order_by`` order, through all pages of ``page_size`` or until
    ``limit`` runs; each converted by ``record`` (default: a run record)."""
    ids = list(experiments) if experiments is not None else experiment_ids(client)
    if not ids:
        return []
    out: list[T] = []
    token = None
    while limit is None or len(out) < limit:
        n = page_size if limit is None else min(page_size, limit - len(out))
        page = client.search_runs(ids, filter_string, max_results=n, order_by=list(order_by), page_token=token)
        out.extend(record(r) for r in page)
        token = page.token
        if not token:
            break
    return out


def get_record(client, run_id: str) -> RunRecord:
    try:
        run = client.get_run(run_id)
    except Exception as err:  # mlflow raises MlflowException for unknown ids
        raise StoreError(f"run {run_id}: not found in the tracking store ({type(err).__name__})") from None
    return run_record(run)


def children(client, parent_run_id: str, *, experiments: Optional[Sequence[str]] = None,
             status: Optional[str] = None, filter_string: str = "", order_by: Sequence[str] = OLDEST_FIRST,
             page_size: int = PAGE_SIZE) -> list[RunRecord]:
    """The child runs of ``parent_run_id`` (a study's runs), oldest first. ``experiments``:
    where to look (default: the parent's experiment, one more query; raises StoreError
    when the parent is unknown); ``status`` keeps runs in that state; ``filter_string``
    is ANDed on."""
    if experiments is None:
        experiments = [get_record(client, parent_run_id)["experiment_id"]]
    flt = all_of(f"tags.mlflow.parentRunId = '{parent_run_id}'",
                 f"attributes.status = '{status}'" if status else "", filter_string)
    return search(client, experiments, flt, order_by=order_by, page_size=page_size)


def find_parent(client, experiment: str, name: str) -> Optional[str]:
    """The run id of the latest study parent named ``name`` in experiment ``experiment`` (an id)."""
    runs = search(client, [experiment], f"tags.`study.name` = '{name}' and tags.`study.kind` = 'parent'",
                  limit=1)
    return runs[0]["run_id"] if runs else None


def _active_record(run) -> RunRecord:
    rec = run_record(run)
    rec["epoch"] = epoch_of(run)
    return rec


def active_runs(client, limit: int = 200) -> list[RunRecord]:
    """Runs (not study parents) the store says are RUNNING, newest first, each with its
    ``epoch``: two queries (experiments, one page of runs) however many runs there are."""
    runs = search(client, None, "attributes.status = 'RUNNING'", limit=limit, record=_active_record)
    return [r for r in runs if r["tags"].get("study.kind") != "parent"]


def metric_histories(client, run_id: str, metrics: Optional[Iterable[str]] = None) -> History:
    """``{metric: (steps, values)}`` of one run (one query per metric); ``metrics=None``:
    all the run's metrics except ``final/*`` and ``time/*`` (one more query). Metrics the
    run never logged are absent (not empty)."""
    if metrics is None:
        run = client.get_run(run_id)
        metrics = [k for k in run.data.metrics if not k.startswith(("final/", "time/"))]
    out: History = {}
    for key in metrics:
        points = client.get_metric_history(run_id, key)
        if points:
            out[key] = curve(points)
    return out
