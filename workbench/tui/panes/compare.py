"""Compare: runs and studies from the MLflow store, filtered and picked with space.

For the picked items (a study stands for its children): a mean ± std table over seeds
(rows = the spec fields that tell configurations apart; numbers from
:func:`workbench.analysis.tables.aggregate` through :func:`workbench.faces.views.stats_tables`,
shared with the notebook's Compare panel; mean curves from
:func:`workbench.analysis.plots.curve_stats`), the fields whose values differ, and the
test-accuracy curves overlaid. ``l`` shows the MLflow UI deep link (run page for one
run, compare page for several).
"""
from __future__ import annotations

from typing import Any, Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane

from workbench.tui import links
from workbench.tui.messages import OpenRun, ShowLink
from workbench.faces.views import (AVERAGE_TA, BACKBONE_TA, Item, config_histories, facet_values, matches, param_diff,
                                 stats_tables)
from workbench.tui.widgets.item_table import ItemTable
from workbench.tui.widgets.line_chart import ChartData, LineChart, Series
from workbench.tui.widgets.param_diff import ParamDiff
from workbench.tui.widgets.run_filters import RunFilters
from workbench.tui.widgets.stats_table import StatsTable


class ItemsLoaded(Message):
    def __init__(self, items: list[Item], error: str = "") -> None:
        super().__init__()
        self.items, self.error = items, error


class Analysed(Message):
    def __init__(self, tables: list, note: str, names: list[str], keys: list[str], values: dict,
                 chart: ChartData) -> None:
        super().__init__()
        self.tables, self.note, self.names, self.keys, self.values, self.chart = tables, note, names, keys, values, chart


def overlay(store: Any, items: list[Item]) -> ChartData:
    """One curve per configuration (the stats table's rows): the mean over its runs
    (analysis.curve_stats) of the average's test accuracy where the runs have one, else
    of the backbone's."""
    from workbench.analysis.plots import curve_stats

    series = []
    for name, hists in config_histories(store, items).items():
        metric = AVERAGE_TA if any(AVERAGE_TA in h for h in hists) else BACKBONE_TA
        st = curve_stats(hists, metric)
        if st is None:
            continue
        tag = "avg" if metric == AVERAGE_TA else "backbone"
        series.append(Series(f"{name[:18]} {tag}", st.steps.tolist(), st.mean.tolist(),
                             gap=1 if metric == AVERAGE_TA else None))
    return ChartData(series, x_label="epoch", empty="no curves for the selection")


class ComparePane(Vertical):
    TITLE = "Compare"
    FOCUS = "#items"
    BINDINGS = [
        Binding("space", "toggle", "Pick"),
        Binding("enter", "open", "Details"),
        Binding("l", "link", "Link"),
        Binding("r", "reload", "Reload"),
        Binding("x", "clear", "Clear picks", show=False),
    ]

    def __init__(self, store: Any):
        super().__init__()
        self._shown_once = False
        self.store = store
        self.items: list[Item] = []

    def compose(self) -> ComposeResult:
        yield RunFilters(id="filters")
        yield ItemTable(id="items")
        yield Static("Loading runs from the store…", id="compare-note")
        with TabbedContent(id="compare-tabs"):
            with TabPane("Mean ± std", id="tab-stats"):
                yield StatsTable(id="stats")
            with TabPane("Diff", id="tab-diff"):
                yield ParamDiff(id="diff")
            with TabPane("Curves", id="tab-curves"):
                yield LineChart(id="compare-chart")

    def on_mount(self) -> None:
        self.query_one(StatsTable).show([])
        self.query_one(ParamDiff).show([], [], {})
        self.action_reload()

    def arrived(self) -> None:
        if self._shown_once:  # new runs may have finished since: list them
            self.action_reload()
        self._shown_once = True

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="compare-list", exit_on_error=False)
    def _load(self) -> None:
        try:
            self.post_message(ItemsLoaded(self.store.items()))
        except Exception as err:  # an unreachable store is shown, not fatal
            self.post_message(ItemsLoaded([], f"{type(err).__name__}: {err}"))

    @on(ItemsLoaded)
    def _loaded(self, message: ItemsLoaded) -> None:
        self.items = message.items
        self.query_one(RunFilters).set_options(facet_values(self.items))
        self._refilter()
        note = f"store error: {message.error}" if message.error else (
            f"{len(self.items)} runs and studies in {getattr(self.store, 'uri', 'the store')} · space picks"
            if self.items else "No runs in the store yet: launch one (F2).")
        self.query_one("#compare-note", Static).update(note)

    @on(RunFilters.Changed)
    def _filters(self, message: RunFilters.Changed) -> None:
        self._refilter()

    def _refilter(self) -> None:
        flt = self.query_one(RunFilters).filters
        self.query_one(ItemTable).show([it for it in self.items if matches(it, flt)])

    # -- picking and analysing -------------------------------------------------------------------
    def action_toggle(self) -> None:
        self.query_one(ItemTable).toggle()

    def action_clear(self) -> None:
        self.query_one(ItemTable).clear_selection()

    def picked(self) -> list[Item]:
        by_id = {it.run_id: it for it in self.items}
        return [by_id[r] for r in self.query_one(ItemTable).selected if r in by_id]

    @on(ItemTable.SelectionChanged)
    def _picked(self, message: ItemTable.SelectionChanged) -> None:
        self._analyse(self.picked())

    @work(thread=True, exclusive=True, group="compare-analyse", exit_on_error=False)
    def _analyse(self, items: list[Item]) -> None:
        if not items:
            self.post_message(Analysed([], "", [], [], {}, ChartData(empty="pick runs or studies with space")))
            return
        tables, note = stats_tables(items)
        keys, values = param_diff(items)
        self.post_message(Analysed(tables, note, [it.label() for it in items], keys, values, overlay(self.store, items)))

    @on(Analysed)
    def _analysed(self, m: Analysed) -> None:
        self.query_one(StatsTable).show(m.tables, m.note)
        self.query_one(ParamDiff).show(m.names, m.keys, m.values)
        self.query_one("#compare-chart", LineChart).plot(m.chart)

    # -- links and details -------------------------------------------------------------------------
    def _targets(self) -> list[Item]:
        picked = self.picked()
        if picked:
            return picked
        cur = self.query_one(ItemTable).cursor_row_key
        return [it for it in self.items if it.run_id == cur]

    def action_link(self) -> None:
        items = self._targets()
        if not items:
            self.notify("Nothing to link: pick runs first.", severity="warning")
            return
        if len(items) == 1 and items[0].kind == "run":
            it = items[0]
            self.post_message(ShowLink(links.run_url(it.experiment_id, it.run_id), f"run {it.name}"))
            return
        runs = [r for it in items for r in it.runs] or [it.record for it in items]
        url = links.compare_url([r["run_id"] for r in runs], [r["experiment_id"] for r in runs])
        self.post_message(ShowLink(url, f"{len(runs)} runs"))

    @on(ItemTable.RowSelected, "#items")
    def _row_selected(self, event: ItemTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        cur: Optional[str] = self.query_one(ItemTable).cursor_row_key
        if cur:
            self.post_message(OpenRun(run_id=cur))
