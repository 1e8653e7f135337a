"""The three notebook panels over one launcher and one store, as a ``Tab``.

::

    from workbench.notebook import workbench_panel
    wb = workbench_panel(scale="smoke")   # Launch | Runs | Compare
    wb                                    # display it (the last expression of a cell)

``wb.launch_panel``, ``wb.runs_panel`` and ``wb.compare_panel`` are the panels;
``wb.launcher`` and ``wb.store`` what they share. Like the terminal app's
``build_app(launcher, store)``, both are injectable, so tests pass fakes
(:mod:`workbench.tui.fakes`). Runs launched here log to the store Compare reads
(``tracking.uri`` is filled with the store's URI unless the form sets one), and
Compare reloads when a run ends and when its tab is opened.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import ipywidgets as w

from workbench.notebook.compare import ComparePanel
from workbench.notebook.launch import LaunchPanel
from workbench.notebook.monitor import RunsPanel

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
        self._reloading = threading.Lock()
        launcher.subscribe(self._on_event)
        self.observe(self._tab_changed, names="selected_index")

    def _on_event(self, handle: Any, event: Any) -> None:
        if event.kind == "exit":  # a finished run is new material for Compare; never block the launcher
            threading.Thread(target=self._reload_compare, daemon=True).start()

    def _reload_compare(self) -> None:
        if self._reloading.acquire(blocking=False):  # one reload at a time is enough
            try:
                self.compare_panel.reload()
            finally:
                self._reloading.release()

    def _tab_changed(self, change) -> None:
        if change["new"] == TITLES.index("Compare"):
            self.compare_panel.reload()


def workbench_panel(launcher: Any = None, store: Any = None, *, uri: Optional[str] = None,
                    preset: str = "quickstart", scale: Optional[str] = None, workers: Optional[int] = None,
                    preview: bool = True) -> WorkbenchPanel:
    """The Launch / Runs / Compare tabs over a launcher and a run store; ``None`` builds
    the real ones: a :class:`~workbench.launch.local.LocalLauncher` (``workers`` runs at
    once; its runs end with the kernel) and a :class:`~workbench.tui.store.MlflowStore`
    on ``uri`` (default ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns/mlflow.db``)."""
    if store is None:
        from workbench.tui.store import MlflowStore

        store = MlflowStore(uri)
    if launcher is None:
        from workbench.launch.local import LocalLauncher

        launcher = LocalLauncher(workers=workers)
    return WorkbenchPanel(launcher, store, preset=preset, scale=scale, preview=preview)
