"""Spec fields that differ between the selected runs or studies (and only those)."""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from workbench.tui.widgets.line_table import LineTable


class ParamDiff(LineTable):
    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)

    def show(self, names: list[str], keys: list[str], values: dict[str, list[str]]) -> None:
        self.clear(columns=True)
        if len(names) < 2:
            self.add_column("select two runs or studies or more to see what differs")
            return
        if not keys:
            self.add_column("the selected specs are identical (seeds aside)")
            return
        self.add_column("field", key="field")
        for i, n in enumerate(names):
            self.add_column(Text(n, overflow="ellipsis", no_wrap=True), key=f"c{i}", width=min(22, max(8, len(n))))
        for k in keys:
            self.add_row(k, *[Text(v, overflow="ellipsis", no_wrap=True) for v in values[k]], key=k)
