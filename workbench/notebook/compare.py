"""ComparePanel: runs and studies in the MLflow store, filtered, picked, compared.

For the picked items (a study stands for its children; nothing picked = every item
shown, up to ``max_auto_runs`` runs): a mean ± std table over seeds per final metric
(rows = the spec fields that tell configurations apart, seeds pooled; numbers from
:func:`workbench.analysis.tables.aggregate`, through :func:`workbench.faces.views.stats_tables`
as in the terminal app), the spec fields whose values differ,
and the test-accuracy curves of each configuration overlaid (mean with a ± std band,
:func:`workbench.analysis.plots.plot_ta_curves`) as a static PNG.

The store is a :class:`workbench.tracking.store.MlflowStore` (``sqlite:///mlruns/mlflow.db``
by default, or ``uri``) or anything with its methods (tests use
:class:`workbench.testing.MemoryStore`). Queries block (MLflow is imported on first
use), so :meth:`ComparePanel.reload` may be called from a thread: it only sets traits.
"""
from __future__ import annotations

import html
import threading
from typing import Any, Optional

import ipywidgets as w

from workbench.faces.views import (AVERAGE_TA, BACKBONE_TA, FACETS, Item, config_histories, facet_values, matches,
                                 param_diff, stats_tables)


def curve_groups(store: Any, items: list[Item], max_groups: int = 8) -> dict[str, list[dict]]:
    """``{configuration label: [history per run]}`` of the backbone's and the average's
    test accuracy, grouped like the stats table's rows; runs and groups without a history
    left out."""
    out = {}
    for name, hists in config_histories(store, items, max_groups).items():
        hists = [h for h in hists if h]
        if hists:
            out[name] = hists
    return out


class ComparePanel(w.VBox):
    """Read ``items`` (everything in the store), ``tables`` (``[(title, Table)]`` last
    shown) and ``curves`` (the groups last plotted); call :meth:`reload` / :meth:`pick`."""

    def __init__(self, store: Any = None, *, uri: Optional[str] = None, autoload: bool = True,
                 max_auto_runs: int = 24, max_groups: int = 8):
        if store is None:
            from workbench.tracking.store import MlflowStore

            store = MlflowStore(uri)
        self.store = store
        self.items: list[Item] = []
        self.tables: list[tuple[str, Any]] = []
        self.curves: dict[str, list] = {}
        self.max_auto_runs = max_auto_runs
        self.max_groups = max_groups
        self._lock = threading.RLock()
        self._quiet = False

        style = {"description_width": "55px"}
        self.filters = {k: w.Dropdown(options=[("any", "")], value="", description=k, style=style,
                                      layout=w.Layout(width="190px")) for k in FACETS}
        self.picker = w.SelectMultiple(options=[], rows=8, description="runs", style={"description_width": "40px"},
                                       layout=w.Layout(width="95%"))
        self.reload_button = w.Button(description="Reload", icon="refresh", tooltip="Read the store again")
        self.clear_button = w.Button(description="Clear picks", tooltip="Compare every run shown")
        self.note = w.HTML("")
        self.stats = w.HTML("")
        self.diff = w.HTML("")
        self.plot = w.Image(format="png", layout=w.Layout(width="640px"))
        for dd in self.filters.values():
            dd.observe(lambda _: self._unless_quiet(self._refilter), names="value")
        self.picker.observe(lambda _: self._unless_quiet(self.analyse), names="value")
        self.reload_button.on_click(lambda _: self.reload())
        self.clear_button.on_click(lambda _: self.pick([]))
        super().__init__([
            w.HBox(list(self.filters.values())),
            self.picker, w.HBox([self.reload_button, self.clear_button]), self.note,
            w.HTML("<b>Mean ± std over seeds</b>"), self.stats,
            w.HTML("<b>Fields that differ</b>"), self.diff,
            w.HTML("<b>Test accuracy per epoch</b> (mean, ± std band where a configuration has several seeds)"),
            self.plot,
        ])
        if autoload:
            self.reload()

    def _unless_quiet(self, action) -> None:
        """A user's change (a filter, a pick); the panel's own changes set ``_quiet``. The
        lock first: a change arriving while a reload runs on another thread waits for it
        instead of being taken for the reload's own."""
        with self._lock:
            if not self._quiet:
                action()

    # -- loading ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the store again (keeps filters and picks that still exist)."""
        with self._lock:
            try:
                self.items = self.store.items()
                error = ""
            except Exception as err:  # an unreachable store is shown, not raised
                self.items, error = [], f"{type(err).__name__}: {err}"
            values = facet_values(self.items)
            self._quiet = True
            try:
                for k, dd in self.filters.items():
                    keep = dd.value if dd.value in values[k] else ""
                    dd.options = [("any", "")] + [(v, v) for v in values[k]]
                    dd.value = keep
            finally:
                self._quiet = False
            if error:
                self.note.value = f'<span style="color:#c62828">store error: {html.escape(error)}</span>'
            elif not self.items:
                self.note.value = f"No runs in {html.escape(self.store.uri)} yet: launch one."
            else:
                self.note.value = (f"{len(self.items)} runs and studies in {html.escape(self.store.uri)}; pick some "
                                   f"(ctrl/shift-click) or compare everything shown.")
            self._refilter()

    def shown(self) -> list[Item]:
        flt = {k: dd.value for k, dd in self.filters.items()}
        return [it for it in self.items if matches(it, flt)]

    def _refilter(self) -> None:
        with self._lock:
            shown = self.shown()
            options = [(_label(it), it.run_id) for it in shown]
            keep = tuple(v for v in self.picker.value if v in {it.run_id for it in shown})
            self._quiet = True
            try:
                self.picker.options = options
                self.picker.value = keep
            finally:
                self._quiet = False
            self.analyse()

    # -- picking and analysing -------------------------------------------------------------------
    def pick(self, run_ids: list[str]) -> None:
        """Pick items by run id (of a run or a study's parent) and compare them."""
        with self._lock:
            have = {v for _, v in self.picker.options}
            self._quiet = True
            try:
                self.picker.value = tuple(r for r in run_ids if r in have)
            finally:
                self._quiet = False
            self.analyse()

    def picked(self) -> list[Item]:
        """The picked items, or every item shown when none is picked."""
        shown = self.shown()
        chosen = set(self.picker.value)
        return [it for it in shown if it.run_id in chosen] if chosen else shown

    def analyse(self) -> None:
        with self._lock:
            items = self.picked()
            n_runs = sum(len(it.runs) for it in items)
            if not items:
                self.tables, self.curves = [], {}
                self.stats.value, self.diff.value, self.plot.value = "<i>nothing to compare</i>", "", b""
                return
            if not self.picker.value and n_runs > self.max_auto_runs:
                self.tables, self.curves = [], {}
                self.stats.value = (f"<i>{n_runs} runs shown: pick the runs or studies to compare "
                                    f"(or narrow the filters).</i>")
                self.diff.value, self.plot.value = "", b""
                return
            try:
                self.tables, note = stats_tables(items)
                self.stats.value = "".join(f"<p><b>{html.escape(t)}</b></p>{tab.to_html()}"
                                           for t, tab in self.tables) or (
                    f"<i>{html.escape(note or 'no final metrics among the selection')}</i>")
                self.diff.value = _diff_html(items)
                self.curves = curve_groups(self.store, items, self.max_groups)
                self.plot.value = self._png(self.curves)
            except Exception as err:  # a store gone mid-way, a run deleted: shown, not lost in a thread
                self.curves = {}
                self.plot.value = b""
                self.note.value = (f'<span style="color:#c62828">compare error: '
                                   f'{html.escape(f"{type(err).__name__}: {err}")}</span>')

    @staticmethod
    def _png(groups: dict[str, list]) -> bytes:
        if not groups:
            return b""
        from workbench.analysis.plots import plot_ta_curves
        from workbench.notebook.figures import png

        fig = plot_ta_curves(groups, (BACKBONE_TA, AVERAGE_TA))
        fig.set_size_inches(6.4, 3.8)
        return png(fig, dpi=90)


def _label(it: Item) -> str:
    facets = " / ".join(sorted(it.facet("variant")) + sorted(it.facet("model")) + sorted(it.facet("dataset")))
    kind = "study" if it.kind == "study" else "run"
    return f"{it.status:<9} {kind:<5} {it.label()}  [{facets}]  {it.run_id[:8]}"


def _diff_html(items: list[Item]) -> str:
    if len(items) < 2:
        return "<i>pick two or more runs or studies to see how their specs differ</i>"
    keys, values = param_diff(items)
    if not keys:
        return "<i>the picked specs are the same</i>"
    esc = html.escape
    head = "<th></th>" + "".join(f'<th style="text-align:left;padding:2px 8px">{esc(it.label())}</th>' for it in items)
    rows = "".join(f'<tr><td style="padding:2px 8px"><code>{esc(k)}</code></td>'
                   + "".join(f'<td style="padding:2px 8px">{esc(v)}</td>' for v in values[k]) + "</tr>" for k in keys)
    return f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
