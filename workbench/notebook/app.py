"""The three notebook panels over one launcher and one store, as a ``Tab``.

::

    from workbench.notebook import workbench_panel
    wb = workbench_panel(scale="smoke")   # Launch | Runs | Compare
    wb                                    # display it (the last expression of a cell)

``wb.launch_panel``, ``wb.runs_panel`` and ``wb.compare_panel`` are the panels;
``wb.launcher`` and ``wb.store`` what they share. Like the terminal app's
``build_app(launcher, store)``, both are injectable, so tests pass fakes
(:mod:`workbench.testing`). Runs launched here log to the store Compare reads
(``tracking.uri`` is filled with the store's URI unless the form sets one), and
Compare reloads when a run ends, when a study ends (its parent run is marked last)
and when its tab is opened. Reloads run on a background thread (MLflow queries block)
and coalesce: a request that arrives during a reload runs another one after it, so
the last run to end is never missed.
"""
from __future__ import annotations

import html
import threading
from typing import Any, Optional

import ipywidgets as w

from workbench.notebook.compare import ComparePanel
from workbench.notebook.launch import LaunchPanel
from workbench.notebook.runs import RunsPanel

TITLES = ("Launch", "Runs", "Compare")


class WorkbenchPanel(w.Tab):
    """A ``Tab`` of :class:`LaunchPanel`, :class:`RunsPanel` and :class:`ComparePanel`."""

    def __init__(self, launcher: Any, store: Any, *, preset: str = "quickstart", scale: Optional[str] = None,
                 preview: bool = True):
        self.launcher = launcher
        self.store = store
        self.launch_panel = LaunchPanel(launcher, getattr(store, "uri", None), preset=preset, scale=scale,
                                        preview=preview)
        self.runs_panel = RunsPanel(launcher, store)
        self.compare_panel = ComparePanel(store, autoload=False)
        super().__init__(children=[self.launch_panel, self.runs_panel, self.compare_panel], titles=TITLES)
        self._reload_state = threading.Lock()
        self._reload_pending = False
        self._reload_running = False
        self.launch_panel.on_study_end = lambda result: self.request_reload()
        launcher.subscribe(self._on_event)
        self.observe(self._tab_changed, names="selected_index")

    def _on_event(self, handle: Any, event: Any) -> None:
        from workbench.engine.events import Exit

        if isinstance(event, Exit):  # a finished run is new material for Compare; never block the launcher
            self.request_reload()

    def request_reload(self) -> None:
        """Reload Compare on a background thread; a request during a reload queues one more."""
        with self._reload_state:
            self._reload_pending = True
            if self._reload_running:
                return
            self._reload_running = True
        threading.Thread(target=self._reload_loop, name="workbench-compare-reload", daemon=True).start()

    def reloading(self) -> bool:
        with self._reload_state:
            return self._reload_running

    def _reload_loop(self) -> None:
        while True:
            with self._reload_state:
                if not self._reload_pending:
                    self._reload_running = False
                    return
                self._reload_pending = False
            try:
                self.compare_panel.reload()
            except Exception as err:  # shown in the panel, not lost in a thread
                self.compare_panel.note.value = (f'<span style="color:#c62828">reload error: '
                                                  f'{html.escape(f"{type(err).__name__}: {err}")}</span>')

    def _tab_changed(self, change) -> None:
        if change["new"] == TITLES.index("Compare"):
            self.request_reload()  # not on the kernel's thread: the first MLflow query takes seconds


def workbench_panel(launcher: Any = None, store: Any = None, *, uri: Optional[str] = None,
                    preset: str = "quickstart", scale: Optional[str] = None, workers: Optional[int] = None,
                    cwd: Optional[str] = None, preview: bool = True) -> WorkbenchPanel:
    """The Launch / Runs / Compare tabs over a launcher and a run store; ``None`` builds
    the real ones: a :class:`~workbench.launch.local.LocalLauncher` (``workers`` runs at
    once, in the folder ``cwd``, default the kernel's, where a relative ``dataset.root``
    such as the default ``./data`` resolves; its runs end with the kernel) and a
    :class:`~workbench.tracking.store.MlflowStore` on ``uri`` (default ``$MLFLOW_TRACKING_URI``,
    else ``sqlite:///mlruns/mlflow.db``; a relative SQLite path is resolved against the
    kernel's folder now, so runs and Compare use the same file)."""
    if store is None:
        from workbench.faces.launch import absolute_uri
        from workbench.tracking.mlflow_sink import resolve_uri
        from workbench.tracking.store import MlflowStore

        store = MlflowStore(absolute_uri(resolve_uri(uri)))
    if launcher is None:
        from workbench.launch.local import LocalLauncher

        launcher = LocalLauncher(workers=workers, cwd=None if cwd is None else str(cwd))
    return WorkbenchPanel(launcher, store, preset=preset, scale=scale, preview=preview)
