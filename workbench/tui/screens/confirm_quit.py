"""Leaving with runs active: stop them, leave them running, or stay."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmQuitScreen(ModalScreen[str]):
    """Dismisses with ``stop``, ``leave`` or ``stay``."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop them"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, active: int, queued: int, can_leave: bool = True):
        super().__init__()
        self.active, self.queued, self.can_leave = active, queued, can_leave

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            what = f"{self.active} run(s) still active"
            if self.queued:
                what += f" ({self.queued} queued)"
            yield Static(f"{what}.", classes="pane-title")
            if self.can_leave:
                yield Static("Stop them (they end KILLED), or leave them running: they keep logging to "
                             "MLflow and the next session shows them under Runs. Queued runs do not start "
                             "(resume a study with: workbench study <preset> --resume).", id="quit-text")
            else:
                yield Static("Stop them (they end KILLED) and quit, or stay until they finish: this "
                             "launcher's runs cannot outlive the app.", id="quit-text")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop them (s)", id="stop", variant="error", compact=True)
                if self.can_leave:
                    yield Button("Leave running (l)", id="leave", variant="primary", compact=True)
                yield Button("Stay (esc)", id="stay", compact=True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        if choice == "leave" and not self.can_leave:
            return
        self.dismiss(choice)
