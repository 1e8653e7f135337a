"""RunsPanel: the runs of this session, live from the launcher's events.

The launcher calls :meth:`RunsPanel._on_event` from its own threads (one reader per
child process). The panel only *sets widget traits* there (an ``HTML`` table, an
``Image`` plot, a ``Dropdown``'s options): trait changes travel to the front end as comm
messages from any thread, whereas ``with output:`` from a thread would print into
whichever cell happens to run (ipywidgets docs, "Output widgets: interacting from
background threads"). The plot is re-rendered at most every ``plot_interval_s`` seconds
per panel (a trailing timer draws the last skipped update), always at a run's end.

Rows are :class:`workbench.faces.views.RunRow` on a :class:`~workbench.faces.views.RunBoard`
(the terminal app's board, which keys each launcher handle's row uniquely: a study
launched twice keeps both studies' rows); runs a store says are still RUNNING from
another session join with :meth:`RunsPanel.poll_store`. *Cancel run* stops one run,
*Cancel study* every run of the picked run's study (its parent run ends KILLED).
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Optional

import ipywidgets as w

from workbench.engine.events import End, Epoch, Exit, Failed, Initial, Start
from workbench.faces.views import AVERAGE_TA, BACKBONE_TA, RunBoard, fmt_acc, fmt_eta, row_from_record

STATUS_COLOUR = {"QUEUED": "#777", "RUNNING": "#b8860b", "FINISHED": "#2e7d32", "FAILED": "#c62828",
                 "KILLED": "#8e24aa"}
COLUMNS = (("run", "run"), ("status", "status"), ("progress", "progress"), ("epoch", "epoch"),
           ("ta", "TA (backbone)"), ("avg_ta", "TA (average)"), ("eta", "ETA"), ("error", "error"))
ALL = ""
PLOTTED = (Start, Initial, Epoch, End, Failed, Exit)  # the events that can change a curve or end one


class RunsPanel(w.VBox):
    """Live table and test-accuracy plot of the launcher's runs; cancel buttons (a run, a study).

    ``table_rows()`` gives the cells the table shows; ``plot_curves`` the
    ``{run: {metric: (epochs, values)}}`` the plot last drew."""

    def __init__(self, launcher: Any, store: Any = None, *, max_curves: int = 6, plot_interval_s: float = 0.5):
        self.launcher = launcher
        self.store = store
        self.board = RunBoard()
        self.handles = self.board.handles  # row key -> launcher handle (keys unique in this panel)
        self.max_curves = max_curves
        self.plot_interval_s = plot_interval_s
        self.plot_curves: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._last_plot = 0.0
        self._timer: Optional[threading.Timer] = None

        self.table = w.HTML(_table_html([]))
        self.picker = w.Dropdown(options=[("all runs", ALL)], value=ALL, description="run",
                                 style={"description_width": "40px"}, layout=w.Layout(width="420px"))
        self.cancel_button = w.Button(description="Cancel run", icon="stop", button_style="danger",
                                      tooltip="Stop the picked run (or the only active one); it ends KILLED")
        self.cancel_study_button = w.Button(description="Cancel study", icon="stop-circle", button_style="danger",
                                            tooltip="Stop every run of the picked run's study (or of the only "
                                                    "active study); the study's parent run ends KILLED")
        self.store_button = w.Button(description="Runs from other sessions", icon="refresh",
                                     tooltip="Show runs the store says are still RUNNING",
                                     layout=w.Layout(display=None if store is not None else "none"))
        self.plot = w.Image(format="png", layout=w.Layout(width="640px"))
        self.note = w.HTML("")
        self._picking = False  # the panel itself is changing the picker's options
        self.picker.observe(self._picked, names="value")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.cancel_study_button.on_click(lambda _: self.cancel_study())
        self.store_button.on_click(lambda _: self.poll_store())
        buttons = [self.picker, self.cancel_button, self.cancel_study_button, self.store_button]
        super().__init__([self.table, w.HBox(buttons),
                          self.note, w.HTML("<b>Test accuracy per epoch</b>"), self.plot])
        for h in list(getattr(launcher, "handles", [])):  # runs submitted before the panel existed
            self.board.put_handle(h)
        launcher.subscribe(self._on_event)
        self.render(plot=True)

    # -- events (launcher threads) ------------------------------------------------------------
    def _on_event(self, handle: Any, event: Any) -> None:
        with self._lock:
            self.board.put_handle(handle)
            self.render(plot=isinstance(event, PLOTTED), final=isinstance(event, Exit))

    def _picked(self, change) -> None:
        with self._lock:  # waits for a render on another thread; skips the panel's own option changes
            if not self._picking:
                self.render(plot=True, final=True)

    # -- rendering (any thread) -------------------------------------------------------------------
    def table_rows(self) -> list[dict[str, str]]:
        with self._lock:
            rows = list(self.board.rows.values())
        return [{
            "key": r.key, "run": r.name + (" *" if r.source == "store" else ""), "status": r.status,
            "progress": f"{r.progress:.0%}", "epoch": f"{r.epoch}/{r.epochs}" if r.epochs else str(r.epoch),
            "ta": fmt_acc(r.backbone_acc), "avg_ta": fmt_acc(r.average_acc), "eta": fmt_eta(r.eta_s),
            "error": (r.error.splitlines() or [""])[0][:160],
        } for r in rows]

    def render(self, plot: bool = True, final: bool = False) -> None:
        """Table and picker now; the plot now if due (or ``final``), else by a trailing timer."""
        with self._lock:
            rows = self.table_rows()
            self.table.value = _table_html(rows)
            keys = [(r["run"], r["key"]) for r in rows]
            options = [("all runs", ALL)] + keys
            if list(self.picker.options) != options:
                keep = self.picker.value if self.picker.value in [k for _, k in options] else ALL
                self._picking = True
                try:
                    self.picker.options = options
                    self.picker.value = keep
                finally:
                    self._picking = False
            if not plot:
                return
            now = time.monotonic()
            if final or now - self._last_plot >= self.plot_interval_s:
                self._draw()
            elif self._timer is None:
                self._timer = threading.Timer(self.plot_interval_s, self._trailing)
                self._timer.daemon = True
                self._timer.start()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self._draw()

    def _draw(self) -> None:
        self._last_plot = time.monotonic()
        try:
            self._draw_curves()
        except Exception as err:  # on a launcher thread nobody would see it: shown in the panel
            self.note.value = f"plot error: {html.escape(f'{type(err).__name__}: {err}')}"

    def _draw_curves(self) -> None:
        from workbench.analysis.plots import plot_ta_curves

        picked = self.picker.value
        shown = (BACKBONE_TA, AVERAGE_TA)
        rows = [r for r in self.board.rows.values() if picked in (ALL, r.key) and r.curves]
        curves = {r.name: {m: r.curves[m] for m in shown if m in r.curves} for r in rows[-self.max_curves:]}
        self.plot_curves = curves
        if not curves:
            self.plot.value = b""
            return
        fig = plot_ta_curves({name: [c] for name, c in curves.items()}, (BACKBONE_TA, AVERAGE_TA))
        fig.set_size_inches(6.4, 3.6)
        from workbench.notebook.figures import png

        self.plot.value = png(fig, dpi=90)

    # -- actions --------------------------------------------------------------------------------
    def cancel(self, key: Optional[str] = None) -> Optional[str]:
        """Cancel the run ``key`` (default: the picked run, else the only active one);
        returns the key cancelled, or None (the note says why)."""
        key = key or self.picker.value
        with self._lock:
            if not key:
                active = [k for k, h in self.handles.items() if not h.done]
                if len(active) != 1:
                    self.note.value = ("No active run to cancel." if not active
                                       else "Several runs are active: pick one in the list first.")
                    return None
                key = active[0]
            handle = self.handles.get(key)
        if handle is None:
            self.note.value = f"{html.escape(key)}: started by another session; stop it there."
            return None
        if handle.done:
            self.note.value = f"{html.escape(key)} already ended ({handle.status})."
            return None
        self.launcher.cancel(handle)
        self.note.value = f"Cancel sent to {html.escape(key)}."
        return key

    def cancel_study(self, key: Optional[str] = None) -> Optional[str]:
        """Cancel every run of the study of the run ``key`` (default: the picked run, else
        the only study with active runs): its queued and running children end KILLED and
        so does its parent run. Returns the study's parent run id, or None (the note says why)."""
        from workbench.launch.study import cancel_study

        key = key or self.picker.value
        with self._lock:
            if not key:
                studies = {h.parent_run_id: k for k, h in self.handles.items() if h.parent_run_id and not h.done}
                if len(studies) != 1:
                    self.note.value = ("No active study to cancel." if not studies
                                       else "Several studies are active: pick one of its runs in the list first.")
                    return None
                key = next(iter(studies.values()))
            handle = self.handles.get(key)
        if handle is None:
            self.note.value = f"{html.escape(key)}: started by another session; stop it there."
            return None
        parent = handle.parent_run_id
        if not parent:
            self.note.value = f"{html.escape(key)} is a single run, not part of a study: use Cancel run."
            return None
        name = handle.tags.get("study.name") or parent[:8]
        if cancel_study(parent, "cancelled from the notebook"):
            self.note.value = f"Cancelling study {html.escape(name)} (its queued and running runs)."
            return parent
        with self._lock:  # not running here any more (ended, or run elsewhere): stop what is left of it
            left = [h for h in self.handles.values() if h.parent_run_id == parent and not h.done]
        for h in left:
            self.launcher.cancel(h)
        self.note.value = (f"Cancel sent to the {len(left)} active run(s) of study {html.escape(name)}." if left
                           else f"Study {html.escape(name)} has no active runs.")
        return parent if left else None

    def poll_store(self) -> int:
        """Add runs the store says are RUNNING (from another session) and refresh the ones
        shown earlier; returns how many such runs are shown."""
        if self.store is None:
            return 0
        try:
            active = self.store.active_runs()
            with self._lock:
                for rec in active:
                    if not any(r.run_id == rec["run_id"] and r.source == "session" for r in self.board.rows.values()):
                        self.board.put(row_from_record(rec))
                live = {rec["run_id"] for rec in active}
                for row in [r for r in self.board.rows.values() if r.source == "store" and r.run_id not in live]:
                    self.board.put(row_from_record(self.store.record(row.run_id)))
                n = sum(1 for r in self.board.rows.values() if r.source == "store")
        except Exception as err:  # an unreachable store is shown, not raised
            self.note.value = f"store error: {html.escape(f'{type(err).__name__}: {err}')}"
            return 0
        self.note.value = f"{n} run(s) from other sessions (marked *)." if n else "No runs from other sessions."
        self.render(plot=False)
        return n


def _table_html(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<i>No runs yet: launch one in the Launch tab.</i>"
    esc = html.escape
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{esc(t)}</th>' for _, t in COLUMNS)
    body = []
    for r in rows:
        cells = []
        for k, _ in COLUMNS:
            if k == "progress":
                frac = float(r["progress"].rstrip("%")) / 100
                cells.append(f'<progress value="{frac:.3f}" max="1" style="width:90px"></progress>')
            elif k == "status":
                cells.append(f'<span style="color:{STATUS_COLOUR.get(r[k], "#000")}">{esc(r[k])}</span>')
            else:
                cells.append(esc(r[k]))
        body.append("<tr>" + "".join(f'<td style="padding:2px 8px">{c}</td>' for c in cells) + "</tr>")
    return f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
