"""The run form as ipywidgets, generated from :func:`workbench.spec.form_fields`: no field
is named here, so a field added to ``RunSpec`` appears without notebook code.

One input per field: a ``Dropdown`` for a choice (registry names or literals), a
``Checkbox`` for a bool, ``IntText`` / ``FloatText`` for numbers, a ``Combobox`` where
the panel offers suggestions but any text goes (``device``), and a ``Text`` for the
rest (nullable numbers show ``auto`` when empty; lists and dicts are typed as JSON or
TOML). Under each input a line shows that field's validation message.

The same two generic rules as the terminal app's form shape it (both forms take them,
and the parsing of typed text, from :mod:`workbench.faces.forms`, which imports no UI toolkit):

* sections in ``SECTION_ORDER`` (top-level fields form the section ``run``), each in its
  own collapsible ``Accordion`` (several can be open at once);
* a field whose help starts with ``<choice>:`` (``pswa: window length P``) belongs to that
  choice of its section's selector (``averaging.variant``) and is hidden while another is
  chosen.

Widgets are changed only through :meth:`SpecForm.set_values` / :meth:`SpecForm.set_value`
(or by the user); every change calls ``on_change(path)``.
"""
from __future__ import annotations

import contextlib
import html
from typing import Any, Callable, Iterator, Optional

import ipywidgets as w

from workbench.faces.forms import FieldParseError, form_order, lookup, parse_text, relevance, set_path
from workbench.faces.views import show_value

OPEN_SECTIONS = ("launch", "model", "dataset", "schedule", "averaging", "budget")
LABEL_WIDTH = "150px"
ERROR_STYLE = "color:#c62828"


def _section_title(section: str) -> str:
    return section or "run"


class SpecForm:
    """The inputs of every field, grouped by section. Not a widget itself: :attr:`box`
    is (a ``VBox`` of one ``Accordion`` per section)."""

    def __init__(self, fields: list[dict[str, Any]], choices: Optional[dict[str, list]] = None,
                 on_change: Optional[Callable[[str], None]] = None):
        sections, self.order = form_order(fields)
        self.fields = {f["path"]: f for f in self.order}
        self.choices = {p: (choices or {}).get(p) or f.get("choices") for p, f in self.fields.items()}
        self.belongs = relevance(self.order)
        self.on_change = on_change
        self.errors: dict[str, str] = {}
        self._quiet = 0
        self.inputs: dict[str, w.Widget] = {}
        self.messages: dict[str, w.HTML] = {}
        self.rows: dict[str, w.VBox] = {}
        for f in self.order:
            self._make(f)
        self.sections: dict[str, w.Accordion] = {}
        for s in sections:
            body = w.VBox([self.rows[f["path"]] for f in self.order if f["section"] == s])
            acc = w.Accordion(children=[body], titles=(_section_title(s),))
            acc.selected_index = 0 if s in OPEN_SECTIONS else None
            self.sections[s] = acc
        self.box = w.VBox(list(self.sections.values()))
        self._apply_visibility()

    # -- building -------------------------------------------------------------------------
    def _make(self, f: dict[str, Any]) -> None:
        path, kind = f["path"], f["type"]
        common = dict(description=f["name"], tooltip=f.get("help", ""), style={"description_width": LABEL_WIDTH},
                      layout=w.Layout(width="460px"))
        value = f.get("value", f["default"])
        choices = self.choices.get(path)
        if kind == "choice":
            widget: w.Widget = w.Dropdown(options=self._options(path, value), value=value, **common)
        elif choices:  # suggestions for a free-text field (device)
            widget = w.Combobox(options=[str(c) for c in choices], value=show_value(value), ensure_option=False,
                                placeholder="auto" if f["nullable"] else "", **common)
        elif kind == "bool":
            widget = w.Checkbox(value=bool(value), indent=True, **common)
        elif kind == "int" and not f["nullable"]:
            widget = w.IntText(value=int(value), **common)
        elif kind == "float" and not f["nullable"]:
            widget = w.FloatText(value=float(value), **common)
        else:
            widget = w.Text(value=show_value(value), placeholder="auto" if f["nullable"] else "", **common)
        widget.observe(lambda change, p=path: self._changed(p), names="value")
        help_ = w.HTML(f'<span style="color:#666;font-size:85%">{esc(f.get("help", ""))}</span>',
                       layout=w.Layout(margin=f"0 0 0 {LABEL_WIDTH}"))
        msg = w.HTML("", layout=w.Layout(margin=f"0 0 0 {LABEL_WIDTH}", display="none"))
        self.inputs[path], self.messages[path] = widget, msg
        self.rows[path] = w.VBox([widget, msg, help_], layout=w.Layout(margin="0 0 4px 0"))

    def _options(self, path: str, value: Any) -> list:
        f = self.fields[path]
        opts = [(str(c), c) for c in (self.choices.get(path) or [])]
        if f["nullable"]:
            opts = [("auto", None)] + opts
        if value is not None and value not in [v for _, v in opts]:
            opts.append((str(value), value))  # a preset's value outside the offered choices stays visible
        return opts

    # -- values down ------------------------------------------------------------------------
    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Changes inside do not call ``on_change`` (a preset filling every field)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def set_value(self, path: str, value: Any) -> None:
        """Put a value (typed, as the spec holds it) into its input."""
        f, widget = self.fields[path], self.inputs[path]
        if isinstance(widget, w.Dropdown):
            if value not in [v for _, v in widget.options]:
                widget.options = self._options(path, value)
            widget.value = value
        elif isinstance(widget, w.Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, (w.IntText, w.FloatText)):
            widget.value = value if value is not None else f["default"]
        else:
            widget.value = show_value(value)

    def set_values(self, data: dict[str, Any]) -> None:
        """Fill every field from a nested spec dict (fields it lacks get their defaults),
        quietly; then one ``on_change`` for the whole form."""
        with self.quiet():
            for path, f in self.fields.items():
                self.set_value(path, lookup(data, path, f["default"]))
        self._apply_visibility()

    # -- values up ---------------------------------------------------------------------------
    def value(self, path: str) -> Any:
        """The field's typed value; raises FieldParseError for text that does not parse."""
        f, widget = self.fields[path], self.inputs[path]
        if isinstance(widget, (w.Text, w.Combobox)):
            return parse_text(f, widget.value, auto_is_none=True)
        return widget.value

    def collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(nested spec dict, {path: parse error}); hidden fields keep their values."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for path in self.fields:
            try:
                set_path(data, path, self.value(path))
            except FieldParseError as err:
                errors[path] = f"{path}: {err}"
        return data, errors

    def visible(self, path: str) -> bool:
        sel = self.belongs.get(path)
        if sel is None:
            return True
        return str(self.inputs[sel[0]].value).lower() == sel[1]

    def shown(self) -> list[str]:
        return [p for p in self.fields if self.visible(p)]

    # -- errors --------------------------------------------------------------------------------
    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message under its field (opening its section); clear the others."""
        self.errors = dict(errors)
        for path, msg in self.messages.items():
            text = errors.get(path)
            msg.value = f'<span style="{ERROR_STYLE}">✗ {esc(text)}</span>' if text else ""
            msg.layout.display = None if text else "none"
            if text:
                self.inputs[path].add_class("wb-invalid")
            else:
                self.inputs[path].remove_class("wb-invalid")
        for path in errors:
            if path in self.fields:
                acc = self.sections[self.fields[path]["section"]]
                if acc.selected_index is None:
                    acc.selected_index = 0

    # -- internals -----------------------------------------------------------------------------
    def _apply_visibility(self) -> None:
        for path, row in self.rows.items():
            row.layout.display = None if self.visible(path) else "none"

    def _changed(self, path: str) -> None:
        if path in {s for s, _ in self.belongs.values()}:
            self._apply_visibility()
        if not self._quiet and self.on_change is not None:
            self.on_change(path)


def esc(text: Any) -> str:
    return html.escape(str(text))
