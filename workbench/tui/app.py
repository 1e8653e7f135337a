"""The app: one main screen with three panes (Launch, Runs, Compare), a detail screen,
help, and the quit question.

:func:`build_app` is the factory: it takes the launcher and the store (tests pass
:class:`~workbench.testing.FakeLauncher` / :class:`~workbench.testing.MemoryStore`),
and builds the real ones otherwise. The app subscribes to the launcher; events arrive on
launcher threads and are re-posted as :class:`~workbench.tui.messages.RunUpdated`
messages (``post_message`` is thread-safe), so every UI change happens on the app's loop.

Set ``WORKBENCH_TUI_TRACE=<file>`` to get JSON lines with the time of the first frame
(and whether torch was imported by then), of the form's schema, and of run events:
``bench/tui_latency.py`` reads it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Optional

from textual import on, work
from textual.app import App
from textual.binding import Binding

from workbench.tui.messages import CancelRun, CancelStudy, OpenRun, RunUpdated, ShowLink, StoreRunsFound
from workbench.faces.views import AVERAGE_TA, BACKBONE_TA, RunBoard, fmt_acc, row_from_record
from workbench.tui.panes.launch import SchemaLoaded
from workbench.tui.screens.main import MainScreen

# Panes and screens import when first shown: the first frame waits only for what it
# paints (DataTable, TabbedContent and friends cost ~0.1 s on a busy 2-core box).

STORE_POLL_S = 5.0


def _trace(event: str, **data: Any) -> None:
    path = os.environ.get("WORKBENCH_TUI_TRACE")
    if not path:
        return
    with open(path, "a") as fh:
        fh.write(json.dumps({"event": event, "t": time.time(), **data}) + "\n")


class WorkbenchApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "SWA Workbench"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "show('launch')", "Launch"),
        Binding("f3", "show('runs')", "Runs"),
        Binding("f4", "show('compare')", "Compare"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, launcher: Any, store: Any, *, preset: str = "quickstart", scale: Optional[str] = None,
                 start: str = "launch"):
        super().__init__()
        self.launcher = launcher
        self.store = store
        self.board = RunBoard()

        def launch():
            from workbench.tui.panes.launch import LaunchPane

            return LaunchPane(launcher, getattr(store, "uri", None), preset, scale)

        def runs():
            from workbench.tui.panes.runs import RunsPane

            return RunsPane(self.board)

        def compare():
            from workbench.tui.panes.compare import ComparePane

            return ComparePane(store)

        self.main = MainScreen({"launch": launch, "runs": runs, "compare": compare}, start)

    def pane(self, name: str) -> Any:
        """The pane ``name`` if it has been shown (None otherwise)."""
        return self.main.panes.get(name)

    @property
    def current_pane(self) -> Optional[str]:
        return self.main.current

    async def action_show(self, name: str) -> None:
        if self.screen is not self.main:
            return  # a detail or help screen is on top: its keys rule
        await self.main.show_pane(name)

    def on_mount(self) -> None:
        self.launcher.subscribe(self._launcher_event)
        self.push_screen(self.main)
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        _trace("first_frame", torch="torch" in sys.modules, mlflow="mlflow" in sys.modules)
        self.set_timer(0.1, lambda: self._find_store_runs([]))  # mlflow loads after the first paint

    @on(SchemaLoaded)
    def _schema_loaded(self) -> None:
        # torch and the registries are in now: hundreds of thousands of long-lived objects
        # that every full pass of the cyclic GC would walk again (a ~0.5 s stall of the UI
        # on a busy 2-core machine). Freeze them out of its generations.
        import gc

        gc.collect()
        gc.freeze()
        _trace("form_ready")

    # -- runs of this session -------------------------------------------------------------------
    def _launcher_event(self, handle: Any, event: Any) -> None:
        """Called on launcher threads: hand over to the app's loop."""
        self.post_message(RunUpdated(handle, event))

    @on(RunUpdated)
    def _run_updated(self, message: RunUpdated) -> None:
        from workbench.engine.events import Exit  # loaded by the launcher by now (pydantic: not at start-up)

        row = self.board.put_handle(message.handle)  # a key unique on the board: a study launched twice keeps both
        _trace("run_event", kind=message.event.kind, key=row.key, status=row.status, epoch=row.epoch)
        self._push_row(row)
        if isinstance(message.event, Exit):
            if row.status == "FINISHED":
                self.notify(f"{row.name} finished: SGD TA {fmt_acc(row.backbone_acc)}, "
                            f"avg TA {fmt_acc(row.average_acc)}")
            elif row.status == "FAILED":
                self.notify(f"{row.name} failed: {row.error.splitlines()[0] if row.error else 'see details'}",
                            severity="error", timeout=10)

    def _push_row(self, row) -> None:
        runs = self.pane("runs")
        if runs is not None and runs.is_mounted:
            runs.refresh_row(row.key)
        for screen in self.screen_stack:
            if hasattr(screen, "refresh_row"):  # a RunDetailScreen
                screen.refresh_row(row)

    @on(CancelRun)
    def _cancel(self, message: CancelRun) -> None:
        handle = self.board.handle(message.key)
        if handle is not None and not handle.done:
            self.launcher.cancel(handle)
            self.notify(f"Cancelling {message.key}…")

    @on(CancelStudy)
    def _cancel_study(self, message: CancelStudy) -> None:
        handle = self.board.handle(message.key)
        parent = getattr(handle, "parent_run_id", None)
        if not parent:
            return
        from workbench.launch.study import cancel_study

        name = handle.tags.get("study.name") or parent[:8]
        if cancel_study(parent, "cancelled from the terminal app"):
            self.notify(f"Cancelling study {name} (its queued and running runs)…")
            return
        # not running in this process any more: stop whatever of it is still active
        left = [h for h in self.board.handles.values() if h.parent_run_id == parent and not h.done]
        for h in left:
            self.launcher.cancel(h)
        self.notify(f"Cancelling the {len(left)} active run(s) of study {name}…" if left
                    else f"Study {name} has no active runs.")

    # -- runs of earlier sessions, from the store ---------------------------------------------------
    @work(thread=True, exclusive=True, group="store-runs", exit_on_error=False)
    def _find_store_runs(self, known: list[str]) -> None:
        try:
            records = [r for r in self.store.active_runs() if not self._is_session_run(r["run_id"])]
            ids = {r["run_id"] for r in records}
            records += [self.store.record(rid) for rid in known if rid not in ids]  # ended since
            curves = {r["run_id"]: self.store.history(r["run_id"], (BACKBONE_TA, AVERAGE_TA)) for r in records}
        except Exception as err:  # no store yet, or unreachable: nothing to show
            _trace("store_error", error=str(err))
            return
        self.post_message(StoreRunsFound(records, curves))

    def _is_session_run(self, run_id: str) -> bool:
        return any(h.run_id == run_id for h in list(self.launcher.handles))

    @on(StoreRunsFound)
    def _store_runs(self, message: StoreRunsFound) -> None:
        for rec in message.records:
            if self._is_session_run(rec["run_id"]):
                continue
            row = row_from_record(rec, message.curves.get(rec["run_id"]))
            if rec.get("status") != "RUNNING":
                old = self.board.get(row.key)
                row.epoch = old.epoch if old else row.epoch
            self.board.put(row)
            self._push_row(row)
        active = [r.run_id for r in self.board.active("store")]
        if active:
            self.set_timer(STORE_POLL_S, lambda: self._find_store_runs(active))

    # -- navigation ----------------------------------------------------------------------------------
    def action_help(self) -> None:
        from workbench.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        if not self.is_screen_installed("help"):
            self.install_screen(HelpScreen(), "help")  # composed once, kept for the next time
        self.push_screen("help")

    @on(OpenRun)
    def _open_run(self, message: OpenRun) -> None:
        from workbench.tui.screens.detail import RunDetailScreen

        row = self.board.get(message.key) if message.key else None
        if row is None and message.run_id:
            row = next((r for r in self.board.rows.values() if r.run_id == message.run_id), None)
        if row is not None:
            self.push_screen(RunDetailScreen(self.store, row=row))
        elif message.run_id:
            self.push_screen(RunDetailScreen(self.store, run_id=message.run_id))

    @on(ShowLink)
    def _show_link(self, message: ShowLink) -> None:
        from workbench.tui import links
        from workbench.tui.screens.link import LinkScreen

        opened = links.graphical_browser() is not None
        if opened:
            self._open_browser(message.url)
        self.copy_to_clipboard(message.url)
        self.push_screen(LinkScreen(message.url, message.what, opened))

    @work(thread=True, group="browser", exit_on_error=False)
    def _open_browser(self, url: str) -> None:
        from workbench.tui import links

        links.open_in_browser(url)

    # -- leaving ---------------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        from workbench.tui.screens.confirm_quit import ConfirmQuitScreen

        active = [h for h in list(self.launcher.handles) if not h.done]
        if not active:
            self.exit()
            return
        if isinstance(self.screen, ConfirmQuitScreen):
            return
        queued = sum(1 for h in active if h.status == "QUEUED")
        can_leave = bool(getattr(self.launcher, "outlive", False))
        self.push_screen(ConfirmQuitScreen(len(active), queued, can_leave), self._quit_choice)

    def _quit_choice(self, choice: Optional[str]) -> None:
        if choice == "leave":
            self.launcher.shutdown(cancel=False)
            self.exit(message="Runs left running; `workbench tui` shows them again.")
        elif choice == "stop":
            self.notify("Stopping the active runs…")
            self._stop_and_exit()

    @work(thread=True, exclusive=True, group="quit", exit_on_error=False)
    def _stop_and_exit(self) -> None:
        self.launcher.shutdown(cancel=True)
        deadline = time.time() + float(getattr(self.launcher, "grace_s", 10.0)) + 5.0
        while time.time() < deadline and not all(h.done for h in list(self.launcher.handles)):
            time.sleep(0.1)
        self.call_from_thread(self.exit)


def build_app(launcher: Any = None, store: Any = None, *, uri: Optional[str] = None, workers: Optional[int] = None,
              preset: str = "quickstart", scale: Optional[str] = None, start: str = "launch") -> WorkbenchApp:
    """The app over a launcher and a run store; ``None`` builds the real ones
    (:class:`~workbench.launch.local.LocalLauncher`, :class:`~workbench.tracking.store.MlflowStore`
    on ``uri``). Neither import torch or mlflow. ``start``: the screen shown first
    (launch, runs or compare)."""
    if store is None:
        from workbench.tracking.store import MlflowStore

        store = MlflowStore(uri)
    if launcher is None:
        from workbench.launch.local import LocalLauncher

        try:  # runs may outlive the app ("leave them running" in the quit question)
            launcher = LocalLauncher(workers=workers, outlive=True)
        except TypeError:  # a launcher whose runs always end with its process
            launcher = LocalLauncher(workers=workers)
    return WorkbenchApp(launcher, store, preset=preset, scale=scale, start=start)
