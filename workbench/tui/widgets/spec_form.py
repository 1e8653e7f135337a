"""The run form, generated from :func:`workbench.spec.form_fields`: no field is named here.

A :class:`~workbench.tui.widgets.property_sheet.PropertySheet`: one line per field (one
widget for the whole form, cheap to show and restyle), edited through the
:class:`~workbench.tui.widgets.field_editor.FieldEditor` line below it. A field that
fails validation is marked and its message is shown in a row right under it.

Two generic rules shape the form, so a field added to ``RunSpec`` appears without UI code
(both live in :mod:`workbench.faces.forms`, shared with the notebook's form, as does the
parsing of typed text):

* sections come in the order ``workbench.faces.forms.SECTION_ORDER`` (unknown sections follow), top-level
  fields (seed, device, precision, ...) as the section ``run``;
* a field whose help starts with ``<choice>:`` (``pswa: window length P``) belongs to
  that choice of its section's selector (``averaging.variant``) and is hidden while
  another is chosen.

Messages up: :class:`SpecForm.Changed` after an edit, :class:`SpecForm.Focused` with the
field under the cursor, :class:`SpecForm.EditRequested` on enter. Attributes down:
:meth:`build`, :meth:`set_values`, :meth:`set_input`, :meth:`show_errors`.
"""
from __future__ import annotations

from typing import Any, Optional

from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from workbench.faces.forms import FieldParseError, form_order, lookup, parse_text, relevance, set_path
from workbench.faces.views import show_value
from workbench.tui.widgets.property_sheet import PropertySheet, Row


class SpecForm(PropertySheet):
    BINDINGS = [Binding("enter", "edit", "Edit", show=False)]

    class Changed(Message):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class Focused(Message):
        def __init__(self, field: Optional[dict[str, Any]]) -> None:
            super().__init__()
            self.field = field

    class EditRequested(Message):
        def __init__(self, field: dict[str, Any]) -> None:
            super().__init__()
            self.field = field

    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)
        self.fields: dict[str, dict[str, Any]] = {}
        self.choices: dict[str, list] = {}
        self.values: dict[str, Any] = {}
        self.texts: dict[str, str] = {}  # text typed for a field that does not parse
        self.errors: dict[str, str] = {}
        self._belongs: dict[str, tuple[str, str]] = {}
        self._order: list[dict[str, Any]] = []
        self._shown: tuple = ()

    # -- attributes down ---------------------------------------------------------------------
    def build(self, fields: list[dict[str, Any]], choices: Optional[dict[str, list]] = None) -> None:
        """Take the schema (once, when it has loaded)."""
        self.choices = {f["path"]: (choices or {}).get(f["path"]) or f.get("choices") for f in fields}
        _, self._order = form_order(fields)
        self.fields = {f["path"]: f for f in self._order}
        self._belongs = relevance(self._order)
        self.values = {p: f["value"] for p, f in self.fields.items()}
        self._render_rows()

    def set_values(self, data: dict[str, Any]) -> None:
        """Fill every field from a nested spec dict (fields it lacks get their defaults)."""
        self.values = {p: lookup(data, p, f["default"]) for p, f in self.fields.items()}
        self.texts.clear()
        self._render_rows()

    def set_input(self, path: str, raw: Any) -> None:
        """An edit: a value (from a select or checkbox) or text (from an input)."""
        field = self.fields[path]
        if isinstance(raw, str) and field["type"] != "choice":
            try:
                self.values[path] = parse_text(field, raw)
                self.texts.pop(path, None)
            except FieldParseError:
                self.texts[path] = raw
        else:
            self.values[path] = raw
            self.texts.pop(path, None)
        if path in {s for s, _ in self._belongs.values()}:
            self._render_rows()
        else:
            self._update(path)
        self.post_message(self.Changed(path))

    def text(self, path: str) -> str:
        return self.texts.get(path, show_value(self.values.get(path)))

    def collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(nested spec dict, {path: parse error}); hidden fields keep their values."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for path, field in self.fields.items():
            if path in self.texts:
                try:
                    parse_text(field, self.texts[path])
                except FieldParseError as err:
                    errors[path] = f"{path}: {err}"
                continue
            set_path(data, path, self.values[path])
        return data, errors

    def show_errors(self, errors: dict[str, str]) -> None:
        """Mark these fields and put their messages under them (the cursor stays put: the
        user may be typing in another field)."""
        if errors != self.errors:
            self.errors = dict(errors)
            self._render_rows()

    def go_to_first_error(self) -> None:
        first = next((p for p in self.rows_shown() if p in self.errors), None)
        if first is not None:
            self.move_cursor(row=self.get_row_index(first))  # scrolls its message into view too
            self.focus()

    # -- reading -----------------------------------------------------------------------------
    def visible(self, path: str) -> bool:
        sel = self._belongs.get(path)
        return sel is None or str(self.values.get(sel[0])).lower() == sel[1]

    def rows_shown(self) -> list[str]:
        return [f["path"] for f in self._order if self.visible(f["path"])]

    @property
    def cursor_field(self) -> Optional[dict[str, Any]]:
        return self.fields.get(self.cursor) if self.cursor else None

    # -- rendering ---------------------------------------------------------------------------
    def _cells(self, path: str) -> tuple[Text, Text]:
        f = self.fields[path]
        bad = path in self.errors
        label = Text(("✗ " if bad else "  ") + f["name"], style="bold red" if bad else "", overflow="ellipsis",
                     no_wrap=True)
        value = self.text(path)
        shown = value if value != "" else ("auto" if f["nullable"] else "")
        style = "bold red" if bad else ("dim" if value == "" else "")
        if f["type"] == "choice":
            shown += " ▾"
        return label, Text(shown, style=style, overflow="ellipsis", no_wrap=True)

    def _update(self, path: str) -> None:
        if path in self.rows:
            self.update_row(path, *self._cells(path))

    def _render_rows(self) -> None:
        shown = tuple(self.rows_shown()) + tuple(sorted(self.errors.items()))
        if shown == self._shown and self.rows:
            for p in self.rows_shown():
                self._update(p)
            return
        self._shown = shown
        rows, section = [], None
        for path in self.rows_shown():
            f = self.fields[path]
            if f["section"] != section:
                section = f["section"]
                rows.append(Row(f"§{section}", "heading", Text(f"▌{section or 'run'}"), Text("")))
            rows.append(Row(path, "item", *self._cells(path)))
            if path in self.errors:
                rows.append(Row(f"{path}!", "note", Text(""), Text(self.errors[path], style="red")))
        self.set_rows(rows)

    # -- messages up -------------------------------------------------------------------------
    def cursor_moved(self, key: Optional[str]) -> None:
        self.post_message(self.Focused(self.fields.get(key) if key else None))

    def action_edit(self) -> None:
        field = self.cursor_field
        if field is not None:
            self.post_message(self.EditRequested(field))
