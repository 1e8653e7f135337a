"""A light table on Textual's line API: a header line, rows of cells, a row cursor.

It has the part of ``DataTable``'s interface this app uses (``add_column``, ``add_row``,
``update_cell``, ``get_row``, ``move_cursor``, ``RowHighlighted`` / ``RowSelected``), but
renders each row once into a ``Strip`` and reuses it until that row, the cursor or the
width changes. A DataTable re-renders every cell through Rich on each focus change and
restyle: on a busy 2-core machine that made switching to a pane with a table cost
~40 ms of CPU per frame, and every epoch event repainted the whole run table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass
class Column:
    key: str
    label: Text
    width: Optional[int]  # None: as wide as its widest cell


@dataclass
class TableRow:
    key: str
    cells: dict[str, Any] = field(default_factory=dict)
    version: int = 0


def as_text(value: Any) -> Text:
    return value if isinstance(value, Text) else Text(str(value))


# Cursor keys of the app's scrolling lists (a widget defines ``action_move(delta)``).
CURSOR_BINDINGS = [
    Binding("up", "move(-1)", "Up", show=False),
    Binding("down", "move(1)", "Down", show=False),
    Binding("pageup", "move(-10)", "Page up", show=False),
    Binding("pagedown", "move(10)", "Page down", show=False),
    Binding("home", "move(-100000)", "First", show=False),
    Binding("end", "move(100000)", "Last", show=False),
]


class LineTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"line-table--header", "line-table--cursor"}
    BINDINGS = [*CURSOR_BINDINGS, Binding("enter", "select", "Select", show=False)]

    class RowHighlighted(Message):
        def __init__(self, table: "LineTable", row_key: Optional[str]) -> None:
            super().__init__()
            self.table, self.row_key = table, row_key

        @property
        def control(self) -> "LineTable":
            return self.table

    class RowSelected(RowHighlighted):
        pass

    def __init__(self, *, id: Optional[str] = None, show_cursor: bool = True):
        super().__init__(id=id)
        self.show_cursor = show_cursor
        self.ordered_columns: list[Column] = []
        self._rows: list[TableRow] = []
        self.rows: dict[str, TableRow] = {}
        self.cursor_row = 0
        self._strips: dict[tuple, Strip] = {}
        self._widths: list[int] = []

    # -- the DataTable subset ----------------------------------------------------------------------
    def add_column(self, label: Any, *, key: Optional[str] = None, width: Optional[int] = None) -> None:
        self.ordered_columns.append(Column(key or str(label), as_text(label), width))
        self._relayout()

    def add_row(self, *cells: Any, key: Optional[str] = None) -> str:
        key = key if key is not None else str(len(self._rows))
        row = TableRow(key, {c.key: v for c, v in zip(self.ordered_columns, cells)})
        self._rows.append(row)
        self.rows[key] = row
        self._relayout()
        if len(self._rows) == 1:
            self.post_message(self.RowHighlighted(self, key))
        return key

    def update_cell(self, row_key: str, column_key: str, value: Any) -> None:
        row = self.rows[row_key]
        row.cells[column_key] = value
        row.version += 1
        col = next(c for c in self.ordered_columns if c.key == column_key)
        if col.width is None:
            self._relayout()
        else:
            self.refresh_lines(self.get_row_index(row_key) + 1 - self.scroll_offset.y, 1)

    def clear(self, columns: bool = False) -> None:
        self._rows, self.rows = [], {}
        if columns:
            self.ordered_columns = []
        self.cursor_row = 0
        self._relayout()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_row(self, key: str) -> list[Any]:
        return [self.rows[key].cells.get(c.key, "") for c in self.ordered_columns]

    def get_row_at(self, index: int) -> list[Any]:
        return self.get_row(self._rows[index].key)

    def get_row_index(self, key: str) -> int:
        return next(i for i, r in enumerate(self._rows) if r.key == key)

    @property
    def cursor_key(self) -> Optional[str]:
        return self._rows[self.cursor_row].key if self._rows else None

    def move_cursor(self, row: int, animate: bool = False) -> None:
        if not self._rows:
            return
        row = max(0, min(len(self._rows) - 1, row))
        changed = row != self.cursor_row
        old = self.cursor_row
        self.cursor_row = row
        height = max(1, self.scrollable_content_region.height - 1)
        y = self.scroll_offset.y
        if row < y:
            self.scroll_to(y=row, animate=False)
        elif row >= y + height:
            self.scroll_to(y=row - height + 1, animate=False)
        if changed:
            for r in (old, row):
                self.refresh_lines(r + 1 - self.scroll_offset.y, 1)
            self.post_message(self.RowHighlighted(self, self.cursor_key))

    # -- keys and mouse ------------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step)

    def action_select(self) -> None:
        if self._rows:
            self.post_message(self.RowSelected(self, self.cursor_key))

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= row < len(self._rows):
            if row == self.cursor_row:
                self.action_select()
            self.move_cursor(row)

    def on_focus(self) -> None:
        self.refresh_lines(self.cursor_row + 1 - self.scroll_offset.y, 1)

    def on_blur(self) -> None:
        self.on_focus()

    # -- layout and rendering --------------------------------------------------------------------------
    def _relayout(self) -> None:
        widths = []
        for c in self.ordered_columns:
            if c.width is not None:
                widths.append(c.width)
            else:
                cells = [as_text(r.cells.get(c.key, "")).cell_len for r in self._rows]
                widths.append(min(40, max([c.label.cell_len] + cells)))
        self._widths = widths
        self._strips.clear()
        self.virtual_size = Size(sum(w + 2 for w in widths), len(self._rows) + 1)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            key: tuple = ("§header", len(self.ordered_columns), tuple(self._widths), width)
            cells = [c.label for c in self.ordered_columns]
            style = self.rich_style + self.get_component_rich_style("line-table--header")
        else:
            index = y - 1 + self.scroll_offset.y
            if not 0 <= index < len(self._rows):
                return Strip.blank(width, self.rich_style)
            row = self._rows[index]
            cursor = self.show_cursor and index == self.cursor_row
            key = (row.key, row.version, cursor, cursor and self.has_focus, tuple(self._widths), width)
            cells = [row.cells.get(c.key, "") for c in self.ordered_columns]
            style = self.rich_style
            if cursor:
                cur = self.get_component_rich_style("line-table--cursor")
                style = style + (cur if self.has_focus else Style(bgcolor=cur.bgcolor, dim=True))
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._render(cells, style, width)
        return strip.crop(self.scroll_offset.x, self.scroll_offset.x + width)

    def _render(self, cells: list[Any], style: Style, width: int) -> Strip:
        segs: list[Segment] = []
        console = self.app.console
        for value, w in zip(cells, self._widths):
            text = as_text(value).copy()
            text.truncate(w, overflow="ellipsis", pad=False)
            pad = w - text.cell_len
            left = pad if text.justify == "right" else 0
            segs.append(Segment(" " * (1 + left), style))
            segs += [Segment(s.text, style + s.style if s.style else style) for s in text.render(console)
                     if s.text != "\n"]
            segs.append(Segment(" " * (1 + pad - left), style))
        return Strip(segs).adjust_cell_length(max(width, sum(w + 2 for w in self._widths)), style)
