"""The live table of runs: status, progress, epoch, backbone and average test accuracy, ETA.

Attributes down: the screen calls :meth:`RunTable.upsert` with a
:class:`~workbench.faces.views.RunRow` per launcher event; rows are keyed by the row's
key, so an update rewrites cells in place (no flicker, the cursor stays put).
The table's ``RowHighlighted`` / ``RowSelected`` messages go up.
"""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from workbench.tui.widgets.line_table import LineTable

from workbench.faces.views import STATUS_STYLE, RunRow, fmt_acc, fmt_eta, progress_bar

COLUMNS = (("status", "Status", 8), ("run", "Run", 22), ("progress", "Progress", 8), ("epoch", "Epoch", 5),
           ("backbone", "SGD TA", 6), ("average", "Avg TA", 6), ("eta", "ETA", 6))


def cells(row: RunRow) -> list:
    status = row.status + ("*" if row.source == "store" else "")
    return [
        Text(status, style=STATUS_STYLE.get(row.status, "")),
        Text(row.name, overflow="ellipsis", no_wrap=True),
        Text(progress_bar(row.progress, 8), style="green" if row.status == "FINISHED" else "yellow"),
        f"{row.epoch}/{row.epochs}" if row.epochs else "",
        Text(fmt_acc(row.backbone_acc), justify="right"),
        Text(fmt_acc(row.average_acc), justify="right"),
        fmt_eta(row.eta_s),
    ]


class RunTable(LineTable):
    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def upsert(self, row: RunRow) -> None:
        values = cells(row)
        if row.key in self.rows:
            for (col, _, _), value in zip(COLUMNS, values):
                self.update_cell(row.key, col, value)
        else:
            self.add_row(*values, key=row.key)

    @property
    def selected_key(self) -> Optional[str]:
        return self.cursor_key
