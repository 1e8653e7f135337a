"""The app's read access to the MLflow store, as one small object tests can replace.

:class:`MlflowStore` is the real one (a SQLite file or a tracking server); the
in-memory :class:`workbench.testing.MemoryStore` has the same methods. Every
method blocks (MLflow is imported on first use, ~1-2 s), so the app calls them
from thread workers only.

Run records are :func:`workbench.analysis.runs.run_record` dicts plus
``experiment_id``, ``start_time``, ``parent_run_id`` and, for active runs,
``epoch`` (the last logged epoch).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol

from workbench.faces.views import Item

LIST_LIMIT = 2000


class RunStore(Protocol):
    uri: str

    def items(self) -> list[Item]: ...
    def active_runs(self) -> list[dict[str, Any]]: ...
    def record(self, run_id: str) -> dict[str, Any]: ...
    def history(self, run_id: str, metrics: Iterable[str]) -> dict[str, tuple[list, list]]: ...
    def artifacts(self, run_id: str) -> list[str]: ...
    def text_artifact(self, run_id: str, path: str) -> Optional[str]: ...


def _record(run) -> dict[str, Any]:
    from workbench.analysis.runs import run_record

    rec = run_record(run)
    rec["experiment_id"] = run.info.experiment_id
    rec["start_time"] = run.info.start_time or 0
    rec["parent_run_id"] = rec["tags"].get("mlflow.parentRunId")
    return rec


def group_items(records: list[dict[str, Any]]) -> list[Item]:
    """Study parents with their children, and stand-alone runs; newest first."""
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
        name = r["tags"].get("study.name", r.get("run_name") or r["run_id"][:8]) if study else (r.get("run_name") or r["run_id"][:8])
        out.append(Item("study" if study else "run", r["run_id"], name, r["status"], r["experiment_id"], r, kids))
    return out


class MlflowStore:
    """Reads runs from one MLflow tracking URI (default: the workbench's local store)."""

    def __init__(self, uri: Optional[str] = None):
        from workbench.tracking.mlflow_sink import resolve_uri

        self.uri = resolve_uri(uri)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from workbench.tracking.mlflow_sink import client_for

            self._client = client_for(self.uri)[0]
        return self._client

    def _experiment_ids(self) -> list[str]:
        return [e.experiment_id for e in self.client.search_experiments()]

    def _search(self, filter_string: str = "", limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
        ids = self._experiment_ids()
        if not ids:
            return []
        out, token = [], None
        while len(out) < limit:
            page = self.client.search_runs(ids, filter_string, max_results=min(1000, limit - len(out)),
                                           order_by=["attributes.start_time DESC"], page_token=token)
            out.extend(_record(r) for r in page)
            token = page.token
            if not token:
                break
        return out

    def items(self) -> list[Item]:
        return group_items(self._search())

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs (not study parents) the store says are RUNNING, with their last epoch."""
        out = []
        for rec in self._search("attributes.status = 'RUNNING'", 200):
            if rec["tags"].get("study.kind") == "parent":
                continue
            hist = self.client.get_metric_history(rec["run_id"], "backbone/train_loss")
            rec["epoch"] = max((m.step for m in hist), default=0)
            out.append(rec)
        return out

    def record(self, run_id: str) -> dict[str, Any]:
        return _record(self.client.get_run(run_id))

    def history(self, run_id: str, metrics: Iterable[str]) -> dict[str, tuple[list, list]]:
        from workbench.analysis.runs import metric_histories

        self.client  # the analysis helper opens its own client on the same URI
        hist = metric_histories(run_id, list(metrics), uri=self.uri)
        return {k: (s.tolist(), v.tolist()) for k, (s, v) in hist.items()}

    def artifacts(self, run_id: str) -> list[str]:
        out: list[str] = []

        def walk(path: Optional[str]) -> None:
            for a in self.client.list_artifacts(run_id, path):
                if a.is_dir:
                    walk(a.path)
                else:
                    size = f"  ({a.file_size / 1e6:.1f} MB)" if a.file_size and a.file_size > 1e5 else ""
                    out.append(a.path + size)

        try:
            walk(None)
        except Exception:  # an unreachable artifact store: the list is a convenience
            return out
        return out

    def text_artifact(self, run_id: str, path: str) -> Optional[str]:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()
        except Exception:
            return None
