"""Read finished runs back from MLflow, and log analysis results into them.

Everything the analyses need from the store goes through here, so the other
modules work on plain data (dicts, numpy arrays, state dicts) and can be used
from a notebook without MLflow at all.

A *run record* is a plain dict::

    {"run_id": str, "run_name": str, "status": str,
     "params": {name: str}, "metrics": {name: float}, "tags": {name: str}}

``metrics`` holds each metric's *latest* value (what ``run.data.metrics``
gives): right for the ``final/*`` metrics, which are logged once. Per-epoch
curves come from :func:`metric_histories`.

A *history* is ``{metric: (steps, values)}`` with numpy arrays sorted by step
(step = epoch, 1-based). Pitfall: a metric logged twice at one step (a resumed
run) keeps the later value.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

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


def run_record(run) -> dict[str, Any]:
    """An MLflow ``Run`` as a plain run record (see the module docstring)."""
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


def fetch_run(run_id: str, uri: Optional[str] = None) -> dict[str, Any]:
    client = _client(uri)
    try:
        return run_record(client.get_run(run_id))
    except Exception as err:  # mlflow raises MlflowException for unknown ids
        raise AnalysisError(f"run {run_id}: not found in the tracking store ({type(err).__name__})") from None


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
    client = _client(uri)
    clauses = []
    if parent_run_id:
        try:
            exp_ids = [client.get_run(parent_run_id).info.experiment_id]
        except Exception as err:
            raise AnalysisError(f"run {parent_run_id}: not found in the tracking store "
                                f"({type(err).__name__})") from None
        clauses.append(f"tags.mlflow.parentRunId = '{parent_run_id}'")
    elif experiment:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise AnalysisError(f"experiment {experiment!r}: not found in the tracking store")
        exp_ids = [exp.experiment_id]
    else:
        raise AnalysisError("fetch_runs: give a parent run id or an experiment name")
    if status:
        clauses.append(f"attributes.status = '{status}'")
    if filter_string:
        clauses.append(filter_string)  # MLflow's search grammar has AND only
    flt = " and ".join(clauses)
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, filter_string=flt, max_results=page_size,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        out.extend(run_record(r) for r in page)
        token = page.token
        if not token:
            return out


def metric_histories(run_id: str, metrics: Optional[Iterable[str]] = None, uri: Optional[str] = None) -> History:
    """``{metric: (steps, values)}`` of one run; ``metrics=None``: all the run's metrics
    except ``final/*`` and ``time/*``. Metrics the run never logged are absent (not empty)."""
    client = _client(uri)
    if metrics is None:
        run = client.get_run(run_id)
        metrics = [k for k in run.data.metrics if not k.startswith(("final/", "time/"))]
    out: History = {}
    for key in metrics:
        points = client.get_metric_history(run_id, key)
        if not points:
            continue
        by_step: dict[int, tuple[int, float]] = {}
        for m in points:
            old = by_step.get(m.step)
            if old is None or m.timestamp >= old[0]:
                by_step[m.step] = (m.timestamp, m.value)
        steps = np.array(sorted(by_step), dtype=np.int64)
        out[key] = (steps, np.array([by_step[s][1] for s in steps], dtype=np.float64))
    return out


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


def _download(run_id: str, path: str, uri: Optional[str], dst: str) -> Path:
    import os

    client = _client(uri)
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # a tqdm bar per download would clutter CLI output
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        return Path(client.download_artifacts(run_id, path, dst))
    except Exception as err:
        raise AnalysisError(f"run {run_id}: artifact {path} is missing ({type(err).__name__})") from None
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def load_run_spec(run_id: str, uri: Optional[str] = None):
    """The run's resolved spec (its ``spec.toml`` artifact) as a RunSpec."""
    from workbench.presets import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        return load_spec(str(_download(run_id, "spec.toml", uri, tmp)))


def load_weights(run_id: str, which: str = "average", uri: Optional[str] = None, map_location: Any = "cpu"):
    """A full state dict saved by the run: ``which`` is ``average`` (the output average,
    BN statistics recomputed) or ``backbone`` (the last iterate)."""
    import torch

    if which not in ("average", "backbone"):
        raise AnalysisError(f"which: expected average or backbone, got {which!r}")
    with tempfile.TemporaryDirectory() as tmp:
        names = {a.path for a in _client(uri).list_artifacts(run_id, "weights")}
        if f"weights/{which}.pt" not in names:
            hint = " (a run without averaging has no average: use backbone)" if which == "average" else ""
            raise AnalysisError(f"run {run_id}: no weights/{which}.pt artifact{hint}")
        path = _download(run_id, f"weights/{which}.pt", uri, tmp)
        return torch.load(path, map_location=map_location, weights_only=True)


def load_samples(run_id: str, uri: Optional[str] = None, *, lazy: bool = False,
                 map_location: Any = "cpu") -> list[tuple[int, int, Any]]:
    """The run's kept samples (``averaging.keep_samples = true``) as ``(window, k, params)``,
    window and k 1-based, sorted. With ``lazy=True`` ``params`` is a zero-argument callable
    that loads the file (the files are downloaded once into a temporary folder that lives
    as long as the callables): use it for big models, where all samples do not fit at once.
    """
    import torch

    client = _client(uri)
    files = sorted(a.path for a in client.list_artifacts(run_id, "samples") if a.path.endswith(".pt"))
    if not files:
        raise AnalysisError(f"run {run_id}: no samples/ artifacts (run it with averaging.keep_samples = true)")
    tmp = tempfile.TemporaryDirectory()
    folder = _download(run_id, "samples", uri, tmp.name)
    out = []
    for f in files:
        stem = Path(f).stem  # wWW_sKKK
        w, k = stem.split("_")
        path = folder / Path(f).name

        def load(path=path, _keep=tmp):  # _keep: the folder lives while a loader does
            return torch.load(path, map_location=map_location, weights_only=True)

        out.append((int(w[1:]), int(k[1:]), load if lazy else load()))
    if not lazy:
        tmp.cleanup()
    return sorted(out, key=lambda s: (s[0], s[1]))


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
