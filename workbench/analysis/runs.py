"""Read finished runs back from MLflow, and log analysis results into them.

Everything the analyses need from the store goes through here, so the other
modules work on plain data (dicts, numpy arrays, state dicts) and can be used
from a notebook without MLflow at all. The queries themselves live in
:mod:`workbench.tracking` (one paginated search, artifact downloads); these
functions open a client on ``uri``, call them, and turn a missing run, experiment
or artifact into an :class:`AnalysisError`.

A *run record* is a plain dict (:class:`workbench.tracking.records.RunRecord`)::

    {"run_id": str, "run_name": str, "status": str,
     "params": {name: str}, "metrics": {name: float}, "tags": {name: str},
     "experiment_id": str, "start_time": int, "parent_run_id": str | None}

``metrics`` holds each metric's *latest* value (what ``run.data.metrics``
gives): right for the ``final/*`` metrics, which are logged once. Per-epoch
curves come from :func:`metric_histories`.

A *history* is ``{metric: (steps, values)}`` here with numpy arrays sorted by step
(step = epoch, 1-based; the store's own histories hold the same as lists).
Pitfall: a metric logged twice at one step (a resumed run) keeps the later value.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from workbench.tracking.records import StoreError, run_record  # noqa: F401  (run_record: re-exported)

History = dict[str, tuple[np.ndarray, np.ndarray]]

# The per-epoch metrics the figures read (others can be asked for by name).
CURVE_METRICS = ("backbone/test_acc", "backbone/test_loss", "backbone/train_loss", "backbone/train_acc",
                 "average/test_acc", "average/test_loss", "average/new_samples", "average/n_samples",
                 "window", "lr")


class AnalysisError(ValueError):
    """Bad input to an analysis (missing run, artifact or metric; incompatible runs).
    The message is one line, fit for a CLI error."""


def _client(uri: Optional[str]):
    from workbench.tracking.mlflow_sink import client_for

    return client_for(uri)[0]


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """The store's one-line errors (a missing run, experiment or artifact) as AnalysisError."""
    try:
        yield
    except StoreError as err:
        raise AnalysisError(str(err)) from None


def fetch_run(run_id: str, uri: Optional[str] = None) -> dict[str, Any]:
    from workbench.tracking.queries import get_record

    with _store_errors():
        return get_record(_client(uri), run_id)


def fetch_runs(
    parent_run_id: Optional[str] = None,
    *,
    experiment: Optional[str] = None,
    filter_string: str = "",
    status: Optional[str] = "FINISHED",
    uri: Optional[str] = None,
    page_size: int = 1000,
) -> list[dict[str, Any]]:
    """Run records of a study's children, or of an experiment, paging through all results.

    ``parent_run_id``: the children of that run (``tags.mlflow.parentRunId``), searched in
    the parent's experiment. Else ``experiment`` (a name) is searched. ``filter_string`` is
    ANDed on. ``status`` keeps only runs in that state (default FINISHED: a failed or
    running child has no final metrics); None keeps all. Returned oldest first.
    """
    from workbench.tracking import queries as q

    if not parent_run_id and not experiment:
        raise AnalysisError("fetch_runs: give a parent run id or an experiment name")
    client = _client(uri)
    with _store_errors():
        if parent_run_id:
            return q.children(client, parent_run_id, status=status, filter_string=filter_string,
                              page_size=page_size)
        flt = q.all_of(f"attributes.status = '{status}'" if status else "", filter_string)
        return q.search(client, [q.experiment_id(client, experiment)], flt, order_by=q.OLDEST_FIRST,
                        page_size=page_size)


def metric_histories(run_id: str, metrics: Optional[Iterable[str]] = None, uri: Optional[str] = None) -> History:
    """``{metric: (steps, values)}`` of one run as numpy arrays (int64 steps, float64
    values); ``metrics=None``: all the run's metrics except ``final/*`` and ``time/*``.
    Metrics the run never logged are absent (not empty)."""
    from workbench.tracking.queries import metric_histories as histories

    hist = histories(_client(uri), run_id, None if metrics is None else list(metrics))
    return {k: (np.array(s, dtype=np.int64), np.array(v, dtype=np.float64)) for k, (s, v) in hist.items()}


def history_from_epochs(epochs: Sequence[Mapping[str, float]]) -> History:
    """A history from ``RunResult.history`` (a list of per-epoch dicts with ``epoch``),
    so the figures work on a ``workbench.run`` result without reading MLflow."""
    keys: dict[str, None] = {}
    for e in epochs:
        keys.update(dict.fromkeys(k for k in e if k != "epoch"))
    out: History = {}
    for k in keys:
        pts = [(int(e["epoch"]), float(e[k])) for e in epochs if k in e]
        out[k] = (np.array([p[0] for p in pts], dtype=np.int64), np.array([p[1] for p in pts], dtype=np.float64))
    return out


# ----------------------------------------------------------------------------- artifacts


def load_run_spec(run_id: str, uri: Optional[str] = None):
    """The run's resolved spec (its ``spec.toml`` artifact) as a RunSpec."""
    from workbench.presets import load_spec
    from workbench.tracking.artifacts import download_spec

    with tempfile.TemporaryDirectory() as tmp, _store_errors():
        return load_spec(str(download_spec(_client(uri), run_id, tmp)))


def load_weights(run_id: str, which: str = "average", uri: Optional[str] = None, map_location: Any = "cpu"):
    """A full state dict saved by the run: ``which`` is ``average`` (the output average,
    BN statistics recomputed) or ``backbone`` (the last iterate)."""
    import torch

    from workbench.tracking.artifacts import WEIGHTS, download_weights

    if which not in WEIGHTS:
        raise AnalysisError(f"which: expected average or backbone, got {which!r}")
    with tempfile.TemporaryDirectory() as tmp:
        with _store_errors():
            path = download_weights(_client(uri), run_id, which, tmp)
        return torch.load(path, map_location=map_location, weights_only=True)


def load_samples(run_id: str, uri: Optional[str] = None, *, lazy: bool = False,
                 map_location: Any = "cpu") -> list[tuple[int, int, Any]]:
    """The run's kept samples (``averaging.keep_samples = true``) as ``(window, k, params)``,
    window and k 1-based, sorted. With ``lazy=True`` ``params`` is a zero-argument callable
    that loads the file (the files are downloaded once into a temporary folder that lives
    as long as the callables): use it for big models, where all samples do not fit at once.
    """
    import torch

    from workbench.tracking.artifacts import download_samples

    tmp = tempfile.TemporaryDirectory()
    try:
        with _store_errors():
            files = download_samples(_client(uri), run_id, tmp.name)
    except AnalysisError:
        tmp.cleanup()
        raise
    out = []
    for w, k, path in files:
        def load(path=path, _keep=tmp):  # _keep: the folder lives while a loader does
            return torch.load(path, map_location=map_location, weights_only=True)

        out.append((w, k, load if lazy else load()))
    if not lazy:
        tmp.cleanup()
    return out


def log_analysis(run_id: str, *, metrics: Optional[Mapping[str, float]] = None,
                 files: Optional[Mapping[str, str | bytes | Path]] = None, folder: str = "analysis",
                 uri: Optional[str] = None, step: int = 0) -> None:
    """Log analysis results into an (already finished) run: ``metrics`` at ``step``, and
    ``files`` ({file name: text, bytes or a path}) as artifacts under ``folder``. MLflow
    accepts writes to terminated runs; the run's status is left alone."""
    import shutil
    import time

    from mlflow.entities import Metric

    client = _client(uri)
    if metrics:
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[i : i + 1000])
    if files:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in files.items():
                dst = Path(tmp) / name
                if isinstance(content, Path):
                    shutil.copyfile(content, dst)
                elif isinstance(content, bytes):
                    dst.write_bytes(content)
                else:
                    dst.write_text(content)
            client.log_artifacts(run_id, tmp, folder)


def group_runs(runs: Sequence[Mapping[str, Any]],
               key: str | Sequence[str] | Callable[[Mapping[str, Any]], Any]) -> dict[Any, list]:
    """Runs grouped by a param (or tag), a tuple of params (keys are tuples), or a function
    of the record, in first-seen order."""
    out: dict[Any, list] = {}
    for r in runs:
        if callable(key):
            k = key(r)
        elif isinstance(key, str):
            k = str(param_of(r, key))
        else:
            k = tuple(str(param_of(r, x)) for x in key)
        out.setdefault(k, []).append(r)
    return out


def param_of(run: Mapping[str, Any], key: str) -> Optional[str]:
    """A run's param ``key``; falls back to its tag of that name (``tags.x`` or ``x``)."""
    if key.startswith("tags."):
        return run.get("tags", {}).get(key[5:])
    v = run.get("params", {}).get(key)
    return v if v is not None else run.get("tags", {}).get(key)
