"""A two-column property sheet (label, value) on Textual's line API.

Why not a DataTable: a DataTable renders every cell through Rich on each focus change,
show and restyle (~15 ms per frame for a screenful on a busy 2-core machine, several
frames per pane switch); this widget renders a line once into a ``Strip`` and reuses
it until its content, the cursor or the width changes.

Rows are ``heading`` (a section title), ``item`` (selectable) or ``note`` (a message
under an item, wrapped over as many lines as it needs). The cursor moves over items
only. Subclasses fill rows with :meth:`set_rows` and hear about the cursor through
:meth:`cursor_moved`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.tui.widgets.line_table import CURSOR_BINDINGS


@dataclass
class Row:
    key: str
    kind: str  # heading | item | note
    label: Text
    value: Text


class PropertySheet(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"property-sheet--cursor", "property-sheet--heading"}
    BINDINGS = CURSOR_BINDINGS
    label_width = 18

    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)
        self._rows: list[Row] = []
        self.rows: dict[str, Row] = {}
        self._lines: list[tuple[int, int]] = []  # (row index, line within the row)
        self._first_line: dict[str, int] = {}
        self.cursor: Optional[str] = None  # key of the item under the cursor
        self._strips: dict[tuple, Strip] = {}
        self.placeholder = ""  # shown while there are no rows
        self._laid_out_width = -1

    # -- content ---------------------------------------------------------------------------------
    def set_rows(self, rows: list[Row]) -> None:
        self._rows = rows
        self.rows = {r.key: r for r in rows}
        if self.cursor not in self.rows:
            self.cursor = next((r.key for r in rows if r.kind == "item"), None)
        self._layout_lines()
        self.cursor_moved(self.cursor)

    def update_row(self, key: str, label: Text, value: Text) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        row.label, row.value = label, value
        self._strips = {k: v for k, v in self._strips.items() if k[0] != key}
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_row(self, key: str) -> list[Text]:
        row = self.rows[key]
        return [row.label, row.value]

    def get_row_index(self, key: str) -> int:
        return next(i for i, r in enumerate(self._rows) if r.key == key)

    def move_cursor(self, row: int, animate: bool = False) -> None:
        """Put the cursor on row ``row`` (an item), scrolling it (and its note) into view."""
        key = self._rows[row].key
        self._scroll_to_key(key)
        if self._rows[row].kind == "item" and key != self.cursor:
            self.cursor = key
            self._strips.clear()
            self.refresh()
            self.cursor_moved(key)

    def cursor_moved(self, key: Optional[str]) -> None:
        """Hook for subclasses: the item under the cursor changed."""

    # -- layout ------------------------------------------------------------------------------------
    def _value_width(self) -> int:
        return max(8, self.scrollable_content_region.width - self.label_width - 1)

    def _layout_lines(self) -> None:
        width = self._value_width()
        self._laid_out_width = self.scrollable_content_region.width
        self._lines, self._first_line = [], {}
        for i, r in enumerate(self._rows):
            self._first_line[r.key] = len(self._lines)
            n = len(r.value.wrap(self.app.console, width)) if r.kind == "note" else 1
            self._lines.extend((i, j) for j in range(max(1, n)))
        self._strips.clear()
        self.virtual_size = Size(self.label_width + width + 1, len(self._lines))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.scrollable_content_region.width != self._laid_out_width:  # not on show / hide
            self._layout_lines()

    def _scroll_to_key(self, key: str) -> None:
        top = self._first_line.get(key)
        if top is None:
            return
        i = self.get_row_index(key)
        bottom = top + 1
        if i + 1 < len(self._rows) and self._rows[i + 1].kind == "note":  # keep the message in view
            nxt = self._rows[i + 1].key
            bottom = self._first_line[nxt] + sum(1 for ri, _ in self._lines if ri == i + 1)
        height = self.scrollable_content_region.height or 1
        y = self.scroll_offset.y
        if top < y:
            self.scroll_to(y=top, animate=False)
        elif bottom > y + height:
            self.scroll_to(y=min(top, bottom - height), animate=False)

    # -- keys and mouse ------------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        items = [i for i, r in enumerate(self._rows) if r.kind == "item"]
        if not items:
            return
        at = next((n for n, i in enumerate(items) if self._rows[i].key == self.cursor), 0)
        self.move_cursor(items[max(0, min(len(items) - 1, at + step))])

    def on_click(self, event: events.Click) -> None:
        line = event.y + self.scroll_offset.y
        if 0 <= line < len(self._lines):
            self.move_cursor(self._lines[line][0])

    def on_focus(self) -> None:
        self._refresh_cursor_line()  # it looks different with focus (its strip is keyed on it)

    def on_blur(self) -> None:
        self._refresh_cursor_line()

    def _refresh_cursor_line(self) -> None:
        line = self._first_line.get(self.cursor or "")
        if line is not None:
            self.refresh_lines(line - self.scroll_offset.y, 1)

    # -- rendering -----------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        line = y + self.scroll_offset.y
        width = self.scrollable_content_region.width
        if not 0 <= line < len(self._lines):
            if line == 0 and self.placeholder:
                text = Text(" " + self.placeholder, style="dim")
                return Strip(list(text.render(self.app.console))).adjust_cell_length(width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        ri, sub = self._lines[line]
        row = self._rows[ri]
        on_cursor = row.key == self.cursor
        key = (row.key, sub, on_cursor and self.has_focus, on_cursor, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render(row, sub, on_cursor, width)
            self._strips[key] = strip
        return strip

    def _render(self, row: Row, sub: int, on_cursor: bool, width: int) -> Strip:
        base = self.rich_style
        if row.kind == "heading":
            style = base + self.get_component_rich_style("property-sheet--heading")
            segs = [Segment(s.text, style) for s in row.label.render(self.app.console)]
            return Strip(segs).adjust_cell_length(width, base)
        if row.kind == "note":
            lines = row.value.wrap(self.app.console, self._value_width())
            text = lines[sub] if sub < len(lines) else Text("")
            segs = [Segment(" " * (self.label_width + 1), base)]
            segs += [Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)]
            return Strip(segs).adjust_cell_length(width, base)
        style = base
        if on_cursor:
            cursor = self.get_component_rich_style("property-sheet--cursor")
            style = base + (cursor if self.has_focus else Style(bgcolor=cursor.bgcolor, dim=True))
        label = row.label.copy()
        label.truncate(self.label_width, overflow="ellipsis", pad=True)
        value = row.value.copy()
        value.truncate(self._value_width(), overflow="ellipsis")
        segs = []
        for part in (label, Text(" "), value):
            segs += [Segment(s.text, style + s.style if s.style else style) for s in part.render(self.app.console)]
        return Strip(segs).adjust_cell_length(width, style)
