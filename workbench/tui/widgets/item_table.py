"""The Compare screen's list of runs and studies from the store, with a selection mark.

Attributes down: :meth:`ItemTable.show` with the filtered items, :meth:`toggle` on the
cursor row. Messages up: :class:`ItemTable.SelectionChanged` with the selected run ids
(in the order they were picked).
"""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.message import Message
from workbench.tui.widgets.line_table import LineTable

from workbench.faces.views import STATUS_STYLE, Item, fmt_acc

COLUMNS = (("mark", " ", 1), ("name", "Run / study", 24), ("status", "Status", 8), ("variant", "Variant", 7),
           ("model", "Model", 9), ("dataset", "Data", 8), ("ta", "Avg TA", 6))


def _facet(item: Item, key: str) -> str:
    vals = sorted(item.facet(key))
    return vals[0] if len(vals) == 1 else (f"{len(vals)} kinds" if vals else "–")


def _ta(item: Item) -> str:
    m = item.record.get("metrics", {})
    v = m.get("final/average_test_acc", m.get("final/backbone_test_acc"))
    return fmt_acc(v) if item.kind == "run" else ""


class ItemTable(LineTable):
    class SelectionChanged(Message):
        def __init__(self, run_ids: list[str]) -> None:
            super().__init__()
            self.run_ids = run_ids

    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)
        self.selected: list[str] = []
        self.items: dict[str, Item] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def show(self, items: list[Item]) -> None:
        cursor = self.cursor_row_key
        self.items = {it.run_id: it for it in items}
        self.clear()
        for it in items:
            name = ("▸ " if it.kind == "study" else "") + it.label()
            self.add_row("●" if it.run_id in self.selected else " ", Text(name, overflow="ellipsis", no_wrap=True),
                         Text(it.status, style=STATUS_STYLE.get(it.status, "")), _facet(it, "variant"),
                         _facet(it, "model"), _facet(it, "dataset"), _ta(it), key=it.run_id)
        if cursor in self.items:
            self.move_cursor(row=self.get_row_index(cursor), animate=False)

    @property
    def cursor_row_key(self) -> Optional[str]:
        return self.cursor_key

    def toggle(self, run_id: Optional[str] = None) -> None:
        run_id = run_id or self.cursor_row_key
        if run_id is None:
            return
        if run_id in self.selected:
            self.selected.remove(run_id)
        else:
            self.selected.append(run_id)
        if run_id in self.rows:
            self.update_cell(run_id, "mark", "●" if run_id in self.selected else " ")
        self.post_message(self.SelectionChanged(list(self.selected)))

    def clear_selection(self) -> None:
        for rid in list(self.selected):
            if rid in self.rows:
                self.update_cell(rid, "mark", " ")
        self.selected.clear()
        self.post_message(self.SelectionChanged([]))
