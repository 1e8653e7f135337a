"""Run detail: the resolved spec, metric curves, artifacts, and the error of a failed run.

Opened on a session row (live: the app calls :meth:`RunDetailScreen.refresh_row`) or on
a store run id. What lives only in the store (artifacts, ``spec.toml``, ``error.txt``)
is read by a worker.
"""
from __future__ import annotations

from typing import Any, Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static, TabbedContent, TabPane

from workbench.tui import links
from workbench.tui.messages import ShowLink
from workbench.faces.views import AVERAGE_TA, BACKBONE_TA, STATUS_STYLE, RunRow, fmt_acc, row_from_record
from workbench.tui.widgets.key_bar import KeyBar
from workbench.tui.widgets.line_chart import ChartData, LineChart, Series

CURVES = (BACKBONE_TA, AVERAGE_TA, "backbone/train_acc")


class DetailLoaded(Message):
    def __init__(self, row: Optional[RunRow], spec: str, artifacts: list[str], error: str,
                 curves: dict[str, tuple[list, list]]) -> None:
        super().__init__()
        self.row, self.spec, self.artifacts, self.error, self.curves = row, spec, artifacts, error, curves


def chart(curves: dict[str, tuple[list, list]]) -> ChartData:
    names = {BACKBONE_TA: ("backbone test", "cyan", None), AVERAGE_TA: ("average test", "magenta", 1),
             "backbone/train_acc": ("backbone train", "yellow", None)}
    series = [Series(names[m][0], *curves[m], colour=names[m][1], gap=names[m][2]) for m in CURVES if m in curves]
    return ChartData(series, x_label="epoch", empty="no metrics logged yet")


def header(row: Optional[RunRow]) -> Text:
    if row is None:
        return Text("loading…", style="dim")
    t = Text()
    t.append(row.name, style="bold")
    t.append("  ")
    t.append(row.status, style=STATUS_STYLE.get(row.status, ""))
    t.append(f"  epoch {row.epoch}/{row.epochs}  SGD TA {fmt_acc(row.backbone_acc)}  avg TA {fmt_acc(row.average_acc)}\n")
    t.append(f"run {row.run_id or '(not started)'}  experiment {row.experiment_id or '–'}", style="dim")
    return t


class RunDetailScreen(Screen):
    SUB_TITLE = "Run detail"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "link", "Link"),
    ]

    def __init__(self, store: Any, row: Optional[RunRow] = None, run_id: Optional[str] = None):
        super().__init__(classes="detail")
        self.store = store
        self.row = row
        self.run_id = run_id or (row.run_id if row else None)
        self.spec_text = ""
        self.error_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(header(self.row), id="detail-header")
        with TabbedContent(id="detail-tabs"):
            with TabPane("Curves", id="tab-curves"):
                yield LineChart(id="detail-chart")
            with TabPane("Spec", id="tab-spec"):
                with VerticalScroll():
                    yield Static("", id="detail-spec")
            with TabPane("Artifacts", id="tab-artifacts"):
                with VerticalScroll():
                    yield Static("", id="detail-artifacts")
            with TabPane("Error", id="tab-error"):
                with VerticalScroll():
                    yield Static("", id="detail-error")
        yield KeyBar(classes="key-bar")

    def on_mount(self) -> None:
        if self.row is not None:
            self._show_row(self.row)
        self._load(self.run_id, self.row)

    def refresh_row(self, row: RunRow) -> None:
        """Attributes down: a live session row changed."""
        if self.row is not None and row.key == self.row.key:
            if row.run_id and not self.run_id:
                self.run_id = row.run_id
            was_active = self.row.active
            self._show_row(row)
            if was_active and not row.active and self.run_id:
                self._load(self.run_id, row)  # artifacts and error.txt exist now

    def _show_row(self, row: RunRow) -> None:
        self.row = row
        self.query_one("#detail-header", Static).update(header(row))
        self.query_one("#detail-chart", LineChart).plot(chart(row.curves))
        if row.spec is not None and not self.spec_text:
            from workbench.spec import to_toml

            self.spec_text = to_toml(row.spec)
            self.query_one("#detail-spec", Static).update(Text(self.spec_text))
        if row.error:
            self._set_error(row.error if not self.error_text else self.error_text)
        else:
            self._set_error("")

    def _set_error(self, text: str) -> None:
        self.query_one("#detail-error", Static).update(Text(text or "No error.", style="red" if text else "dim"))
        self.query_one(TabbedContent).get_tab("tab-error").label = "Error ●" if text else "Error"
        if text and self.row is not None and not self.row.active and not getattr(self, "_shown_error", False):
            self._shown_error = True
            self.query_one(TabbedContent).active = "tab-error"

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load(self, run_id: Optional[str], row: Optional[RunRow]) -> None:
        if run_id is None:
            self.post_message(DetailLoaded(row, "", [], row.error if row else "", {}))
            return
        try:
            rec = self.store.record(run_id)
        except Exception as err:  # not (yet) in the store: show what the session knows
            note = f"(the store has no record of run {run_id}: {type(err).__name__})"
            self.post_message(DetailLoaded(row, "", [note], row.error if row else note, {}))
            return
        arts = self.store.artifacts(run_id)
        spec = self.store.text_artifact(run_id, "spec.toml") or self.store.text_artifact(run_id, "study.toml") or ""
        error = rec.get("tags", {}).get("error", "")
        trace = self.store.text_artifact(run_id, "error.txt") if error or rec.get("status") == "FAILED" else None
        if row is not None and row.error and not error:
            error = row.error
        if trace:
            error = f"{error}\n\n{trace}" if error else trace
        curves = {} if row is not None else self.store.history(run_id, CURVES)
        if curves and "epoch" not in rec:
            rec = {**rec, "epoch": max((max(s, default=0) for s, _ in curves.values()), default=0)}
        shown = row if row is not None else row_from_record(rec)
        self.post_message(DetailLoaded(shown, spec, arts, error, curves))

    @on(DetailLoaded)
    def _loaded(self, m: DetailLoaded) -> None:
        if m.spec:
            self.spec_text = m.spec
            self.query_one("#detail-spec", Static).update(Text(m.spec))
        elif not self.spec_text:
            self.query_one("#detail-spec", Static).update(Text("(no spec.toml artifact)", style="dim"))
        arts = "\n".join(m.artifacts) if m.artifacts else "(no artifacts yet)"
        self.query_one("#detail-artifacts", Static).update(Text(arts, style="" if m.artifacts else "dim"))
        if m.row is not None and self.row is None:
            self.row = m.row
            self.query_one("#detail-header", Static).update(header(m.row))
        if m.curves:
            self.query_one("#detail-chart", LineChart).plot(chart(m.curves))
        if m.error:
            self.error_text = m.error
            self._set_error(m.error)

    def action_link(self) -> None:
        row = self.row
        if row is None or not row.run_id or not row.experiment_id:
            self.notify("This run has no MLflow run yet.", severity="warning")
            return
        self.post_message(ShowLink(links.run_url(row.experiment_id, row.run_id), f"run {row.name}"))
