"""Help: what each screen does and its keys (the footer shows the keys of the screen in use)."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

KEYS = (
    ("Everywhere", (("F1 / ?", "this help"), ("F2", "Launch"), ("F3", "Runs"), ("F4", "Compare"),
                    ("ctrl+q", "quit (asks about active runs)"), ("tab", "next field / pane"))),
    ("Launch", (("↑ ↓  enter", "pick a field; edit it in the line below (enter / esc: back)"),
                ("ctrl+r", "launch (1 seed: a run; more seeds or a grid preset: a study)"),
                ("seeds", "follows the preset picked: its [study] seeds, else 1"),
                ("ctrl+o", "reset the form to the preset"), ("✗", "a field that blocks the launch"))),
    ("Runs", (("↑ ↓", "pick a run: its live accuracy plot"), ("enter", "details: spec, curves, artifacts, error"),
              ("c", "cancel the run"), ("C", "cancel the run's whole study (every queued and running run)"),
              ("*", "status from the store: started by another session"))),
    ("Compare", (("space", "pick a run or study (a study = its seeds)"), ("enter", "details"),
                 ("l", "MLflow UI link (start it with: workbench ui)"), ("r", "reload"), ("x", "clear picks"))),
    ("Details", (("escape", "back"), ("l", "MLflow UI link"))),
)


def help_text() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for section, keys in KEYS:
        t.add_row(Text(section, style="bold underline"), "")
        for k, what in keys:
            t.add_row(k, Text(what))  # plain text: "[study]" is not markup
    return t


class HelpScreen(Screen[None]):
    """Opaque on purpose: closing it repaints the main screen from what it had rendered
    (a translucent modal makes Textual restyle every widget underneath)."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("SWA Workbench · keys", classes="pane-title")
            yield Static(help_text())
            yield Static("esc or F1 closes this page", classes="pane-title")
