"""The faces' read access to the MLflow store, as one small object tests can replace.

:class:`MlflowStore` is the real one (a SQLite file or a tracking server), a thin
layer over :mod:`workbench.tracking.queries` and :mod:`workbench.tracking.artifacts`;
the in-memory :class:`workbench.testing.MemoryStore` has the same methods. Every
method blocks (MLflow is imported on first use, ~1-2 s), so the faces call them
from thread workers only.

Records are :class:`~workbench.tracking.records.RunRecord` dicts; those of
:meth:`RunStore.active_runs` carry ``epoch`` (the last logged epoch).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Protocol

from workbench.tracking.records import History, Item, group_items  # noqa: F401  (group_items: re-exported)

LIST_LIMIT = 2000  # runs read for the Compare list, newest first
ACTIVE_LIMIT = 200


class RunStore(Protocol):
    uri: str

    def items(self) -> list[Item]: ...
    def active_runs(self) -> list[dict[str, Any]]: ...
    def record(self, run_id: str) -> dict[str, Any]: ...
    def history(self, run_id: str, metrics: Iterable[str]) -> History: ...
    def artifacts(self, run_id: str) -> list[str]: ...
    def text_artifact(self, run_id: str, path: str) -> Optional[str]: ...


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

    def items(self) -> list[Item]:
        """Studies (parent + children) and stand-alone runs of every experiment, newest first."""
        from workbench.tracking.queries import search

        return group_items(search(self.client, None, limit=LIST_LIMIT))

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs (not study parents) the store says are RUNNING, with their last epoch; a
        fixed two queries however many runs there are."""
        from workbench.tracking.queries import active_runs

        return active_runs(self.client, ACTIVE_LIMIT)

    def record(self, run_id: str) -> dict[str, Any]:
        """The run's record; an unknown id raises MLflow's own error (the detail screen
        shows its type)."""
        from workbench.tracking.records import run_record

        return run_record(self.client.get_run(run_id))

    def history(self, run_id: str, metrics: Iterable[str]) -> History:
        from workbench.tracking.queries import metric_histories

        return metric_histories(self.client, run_id, list(metrics))

    def artifacts(self, run_id: str) -> list[str]:
        """The run's files, a big one with its size (``weights/average.pt  (1.2 MB)``); an
        unreachable artifact store gives what was listed so far (the list is a convenience)."""
        from workbench.tracking.artifacts import iter_files

        out: list[str] = []
        try:
            for f in iter_files(self.client, run_id):
                size = f"  ({f.size / 1e6:.1f} MB)" if f.size and f.size > 1e5 else ""
                out.append(f.path + size)
        except Exception:
            pass
        return out

    def text_artifact(self, run_id: str, path: str) -> Optional[str]:
        from workbench.tracking.artifacts import text_artifact

        return text_artifact(self.client, run_id, path)
