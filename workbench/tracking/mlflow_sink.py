"""MLflow tracking with an explicit store.

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under
``mlruns/artifacts`` (MLflow 3's plain ``./mlruns`` file store is deprecated and
refuses writes); ``MLFLOW_TRACKING_URI`` wins when set, ``tracking.uri`` wins
over both. Everything goes through one ``MlflowClient`` (no fluent global state),
metrics in one ``log_batch`` per epoch (one ``log_metric`` to SQLite costs ~17 ms).
The reads are in :mod:`workbench.tracking.queries` and :mod:`~workbench.tracking.artifacts`.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from workbench.tracking.records import EPOCH_TAG

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"


def resolve_uri(uri: Optional[str] = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def sqlite_path(uri: str) -> Optional[Path]:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def artifact_root(uri: str) -> Optional[str]:
    """Artifacts live beside a SQLite store (``<db folder>/artifacts``); servers decide
    for themselves."""
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.parent.resolve() / "artifacts").as_uri()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def client_for(uri: Optional[str] = None):
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri), uri


def ensure_experiment(client, uri: str, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri))
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class MlflowTracker:
    """Owns one MLflow run: params and tags at start, a batch per epoch, artifacts at the end."""

    def __init__(self, tracking_spec, client=None):
        self.spec = tracking_spec
        if client is None:
            client, uri = client_for(tracking_spec.uri)
        else:
            uri = resolve_uri(tracking_spec.uri)
        self.client = client
        self.uri = uri
        self.run_id: Optional[str] = None
        self.experiment_id: Optional[str] = None

    def start(self, spec, tags: dict[str, str], parent_run_id: Optional[str] = None) -> str:
        from mlflow.entities import Param

        from workbench.spec import flatten, to_toml

        self.experiment_id = ensure_experiment(self.client, self.uri, self.spec.experiment)
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        name = self.spec.run_name or "-".join(
            x for x in (spec.preset, spec.averaging.variant, spec.model.name, spec.dataset.name, f"s{spec.seed}") if x
        )
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        self.run_id = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in flatten(spec).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_text(self.run_id, to_toml(spec), "spec.toml")
        return self.run_id

    def attach(self, run_id: str) -> str:
        """Continue logging into an existing run (resume): reopen it as RUNNING."""
        run = self.client.get_run(run_id)
        self.run_id = run_id
        self.experiment_id = run.info.experiment_id
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, "resumed", "true")
        return run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log ``metrics`` at ``step`` (the epoch), and the epoch as the run's
        :data:`~workbench.tracking.records.EPOCH_TAG` in the same ``log_batch`` (no extra
        round trip): readers learn every active run's epoch from one search."""
        from mlflow.entities import Metric, RunTag

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        epoch = [RunTag(EPOCH_TAG, str(step))]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000], tags=epoch if i == 0 else [])

    def log_state_dicts(self, state_dicts: dict[str, Any], folder: str = "weights") -> None:
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            for name, sd in state_dicts.items():
                if sd is None:
                    continue
                path = Path(tmp) / f"{name}.pt"
                torch.save(sd, path)
            # one call for the folder: a log_artifact per file costs a round trip each
            self.client.log_artifacts(self.run_id, tmp, folder)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def fail(self, err: BaseException, status: str = "FAILED") -> None:
        """Mark the run FAILED (or KILLED) with its reason; never raises."""
        if self.run_id is None:
            return
        try:
            reason = f"{type(err).__name__}: {err}"
            self.set_tags({"error": reason[:5000]})
            self.client.log_text(self.run_id, "".join(traceback.format_exception(err)), "error.txt")
        finally:
            self.client.set_terminated(self.run_id, status=status)


def run_tags(spec, device: str, threads: int) -> dict[str, str]:
    import torch

    return {
        "variant": spec.averaging.variant,
        "model": spec.model.name,
        "dataset": spec.dataset.name,
        "preset": spec.preset or "",
        "git_commit": git_commit(),
        "mlflow.source.git.commit": git_commit(),
        "device": device,
        "threads": str(threads),
        "torch": torch.__version__,
        "host": platform.node(),
    }
