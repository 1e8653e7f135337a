"""An MLflow UI deep link: always shown as text (and copied to the clipboard); opened in a
browser only when a graphical one is available."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class LinkScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,l", "dismiss", "Close")]

    def __init__(self, url: str, what: str, opened: bool):
        super().__init__()
        self.url, self.what, self.opened = url, what, opened

    def compose(self) -> ComposeResult:
        with Vertical(id="link-box"):
            yield Static(f"MLflow UI · {self.what}", classes="pane-title")
            yield Static(Text(self.url, style="bold underline"), id="link-url")
            how = "Opened in your browser." if self.opened else "No graphical browser here: open the URL yourself."
            yield Static(f"{how} Copied to the clipboard where the terminal allows it.\n"
                         "The UI must be running: workbench ui  (http://127.0.0.1:5000)", id="link-hint")
