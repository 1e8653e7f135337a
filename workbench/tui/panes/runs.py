"""Runs: every run of this session (live, from launcher events) and runs the store says
are still RUNNING from an earlier session (marked ``*``, polled), with a live plot of the
highlighted run's backbone vs average test accuracy.

The app owns the :class:`~workbench.faces.views.RunBoard` and calls :meth:`RunsPane.refresh_row`
for each event (attributes down); this screen posts :class:`~workbench.tui.messages.OpenRun`
up for the detail view, :class:`~workbench.tui.messages.CancelRun` (``c``) to stop the
highlighted run and :class:`~workbench.tui.messages.CancelStudy` (``C``, shift+c) to stop
every run of its study.
"""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from workbench.tui.messages import CancelRun, CancelStudy, OpenRun
from workbench.faces.views import AVERAGE_TA, BACKBONE_TA, STATUS_STYLE, RunBoard, RunRow, fmt_acc
from workbench.tui.widgets.line_chart import ChartData, LineChart, Series
from workbench.tui.widgets.run_table import RunTable


def ta_chart(row: Optional[RunRow]) -> ChartData:
    if row is None:
        return ChartData(empty="no run selected")
    c = row.curves
    series = []
    if BACKBONE_TA in c:
        series.append(Series("backbone", *c[BACKBONE_TA], colour="cyan"))
    if AVERAGE_TA in c:
        series.append(Series("average", *c[AVERAGE_TA], colour="magenta", gap=1))
    return ChartData(series, x_label="epoch", empty="waiting for the first epoch…")


def summary(row: Optional[RunRow]) -> Text:
    if row is None:
        return Text("No runs yet.\nF2 opens Launch.", style="dim")
    t = Text()
    t.append(row.name + "\n", style="bold")
    t.append(row.status, style=STATUS_STYLE.get(row.status, ""))
    t.append(f"  epoch {row.epoch}/{row.epochs}\n")
    t.append(f"SGD TA {fmt_acc(row.backbone_acc)}\navg TA {fmt_acc(row.average_acc)}\n")
    if row.run_id:
        t.append(f"run {row.run_id[:12]}\n", style="dim")
    if row.source == "store":
        t.append("* started by another session\n", style="dim")
    if row.error:
        t.append(row.error.splitlines()[0][:200] + "\n", style="bold red")
    return t


class RunsPane(Vertical):
    TITLE = "Runs"
    FOCUS = "#run-table"
    BINDINGS = [
        Binding("enter", "open", "Details", show=True),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("C", "cancel_study", "Cancel study", key_display="C"),
    ]

    def __init__(self, board: RunBoard):
        super().__init__()
        self.board = board

    def compose(self) -> ComposeResult:
        yield RunTable(id="run-table")
        with Horizontal(id="runs-lower"):
            with Vertical(id="runs-plot"):
                yield Static("Test accuracy per epoch", classes="pane-title", id="runs-plot-title")
                yield LineChart(id="ta-chart")
            yield Static(id="run-summary")

    def on_mount(self) -> None:
        self.sync()


    def sync(self) -> None:
        table = self.query_one(RunTable)
        for row in self.board.rows.values():
            table.upsert(row)
        self._show_selected()

    def refresh_row(self, key: str) -> None:
        row = self.board.get(key)
        if row is None:
            return
        table = self.query_one(RunTable)
        table.upsert(row)
        if table.selected_key == key:
            self._show_selected()

    @property
    def selected(self) -> Optional[RunRow]:
        key = self.query_one(RunTable).selected_key
        return self.board.get(key) if key else None

    def _show_selected(self) -> None:
        row = self.selected
        self.query_one("#ta-chart", LineChart).plot(ta_chart(row))
        self.query_one("#run-summary", Static).update(summary(row), layout=False)
        title = f"Test accuracy per epoch · {row.name}" if row else "Test accuracy per epoch"
        self.query_one("#runs-plot-title", Static).update(title, layout=False)

    @on(RunTable.RowHighlighted)
    def _highlighted(self, event: RunTable.RowHighlighted) -> None:
        self._show_selected()

    @on(RunTable.RowSelected)
    def _selected(self, event: RunTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.selected
        if row is not None:
            self.post_message(OpenRun(key=row.key))

    def action_cancel_run(self) -> None:
        row = self.selected
        if row is None:
            return
        if not row.active:
            self.notify(f"{row.name} is {row.status}: nothing to cancel.")
            return
        if row.source != "session":
            self.notify("That run belongs to another session; stop it there (or kill its process).",
                        severity="warning")
            return
        self.post_message(CancelRun(row.key))

    def action_cancel_study(self) -> None:
        row = self.selected
        if row is None:
            return
        if row.source != "session":
            self.notify("That run belongs to another session; stop it there (or kill its process).",
                        severity="warning")
            return
        if not row.parent_run_id:
            self.notify(f"{row.name} is a single run, not part of a study: c cancels it.")
            return
        self.post_message(CancelStudy(row.key))
