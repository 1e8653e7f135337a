"""Mean ± std over seeds, one row per configuration, as :mod:`workbench.analysis` computes it.

The screen hands over :class:`workbench.analysis.tables.Table` objects (one per
metric, same row keys); this widget only lays them out side by side: the row label,
the number of runs, and ``mean ± std`` per metric (best per column in bold, as the
analysis marks it). A cell with one run shows no ± (the analysis' convention).
"""
from __future__ import annotations

from typing import Any, Optional

from rich.text import Text
from workbench.tui.widgets.line_table import LineTable


def cell_text(table: Any, row: tuple, col: tuple) -> Text:
    cell = table.cell(row, col)
    if cell is None:
        return Text("–", justify="right")
    mean = f"{cell.mean:.{table.digits}f}"
    std = f" ± {cell.std:.{table.digits}f}" if cell.n > 1 else ""
    bold = (row, col) in table.best()
    return Text(mean + std, style="bold" if bold else "", justify="right")


class StatsTable(LineTable):
    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)

    def show(self, tables: list[tuple[str, Any]], note: str = "") -> None:
        """``tables``: (column title, analysis Table) pairs sharing their row keys."""
        self.clear(columns=True)
        if not tables:
            self.add_column(note or "select runs or studies (space) to compare")
            return
        first = tables[0][1]
        self.add_column(" / ".join(first.row_keys) or "runs", key="config")
        self.add_column("n", key="n", width=3)
        for title, _ in tables:
            self.add_column(title, key=title)
        rows = list(dict.fromkeys(r for _, t in tables for r in t.rows))
        for r in rows:
            ns = {t.cell(r, c).n for _, t in tables for c in t.cols if t.cell(r, c) is not None}
            values = [cell_text(t, r, t.cols[0]) for _, t in tables]
            label = first.label(r) if r in first.rows else tables[-1][1].label(r)
            self.add_row(Text(label or "all", overflow="ellipsis", no_wrap=True),
                         "/".join(map(str, sorted(ns))), *values)
