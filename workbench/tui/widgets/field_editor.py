"""The line under the form that edits the field under the form's cursor.

One editor per kind, all mounted once and shown one at a time (cheap to switch):
a checkbox for bool, a select for choices (registry names, literals, or choices the
app supplies, such as the GPUs found for ``device``), a one-line input for the rest
(numbers, strings, and lists / dicts as JSON or TOML). Every change is posted up at
once (:class:`FieldEditor.Edited`), so the form validates as you type; enter or escape
posts :class:`FieldEditor.Done` (focus back to the form).
"""
from __future__ import annotations

from typing import Any, Optional

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select

from workbench.faces.views import show_value


class FieldEditor(Horizontal):
    BINDINGS = [Binding("escape", "done", "Back to the form", show=False)]

    class Edited(Message):
        def __init__(self, path: str, raw: Any) -> None:
            super().__init__()
            self.path, self.raw = path, raw

    class Done(Message):
        pass

    def __init__(self, *, id: Optional[str] = None):
        super().__init__(id=id)
        self.path: Optional[str] = None

    def compose(self) -> ComposeResult:
        yield Label("", id="edit-label")
        yield Input("", id="edit-input", compact=True)
        yield Select([], id="edit-select", compact=True, allow_blank=True, prompt="auto")
        yield Checkbox("", id="edit-check", compact=True)

    def on_mount(self) -> None:
        self.edit(None, "", None)

    def edit(self, field: Optional[dict[str, Any]], value: Any, choices: Optional[list]) -> None:
        """Attributes down: show the editor of ``field`` holding ``value`` (text for inputs)."""
        self.path = field["path"] if field else None
        inp, sel, chk = self.query_one(Input), self.query_one(Select), self.query_one(Checkbox)
        kind = "none" if field is None else "bool" if field["type"] == "bool" else "choice" if choices else "text"
        self.query_one(Label).update(f"{field['path']}:" if field else "↑↓ field · enter edits")
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            if kind == "text":
                inp.value = show_value(value) if not isinstance(value, str) else value
                inp.placeholder = "auto" if field["nullable"] else ""
            elif kind == "choice":
                sel.set_options([(str(c), c) for c in choices])
                if value in choices:
                    sel.value = value
                else:
                    sel.clear()
            elif kind == "bool":
                chk.value = bool(value)
        inp.display, sel.display, chk.display = kind == "text", kind == "choice", kind == "bool"

    def focus_editor(self) -> None:
        for w in (self.query_one(Input), self.query_one(Select), self.query_one(Checkbox)):
            if w.display:
                w.focus()
                return

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event) -> None:
        event.stop()
        if self.path is None:
            return
        raw = event.value
        if isinstance(event, Select.Changed):
            raw = None if event.value is Select.NULL else event.value
        self.post_message(self.Edited(self.path, raw))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_done()

    def action_done(self) -> None:
        self.post_message(self.Done())
