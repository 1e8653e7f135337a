"""The main screen: the header, one of three panes (Launch, Runs, Compare), the key bar.

Panes live in a ``ContentSwitcher`` rather than in Textual modes: switching modes
restyles and re-renders every widget of the incoming screen (~0.1 s on a busy 2-core
machine), while switching panes only toggles their display and reuses what they had
rendered. A pane is built the first time it is shown (the first frame pays for the
first pane only). Attributes down: :meth:`MainScreen.show_pane`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Header

from workbench.tui.widgets.key_bar import KeyBar


class MainScreen(Screen):
    def __init__(self, factories: dict[str, Callable[[], Widget]], start: str):
        super().__init__(id="main")
        self.factories = factories
        self.start = start
        self.panes: dict[str, Widget] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        first = self._make(self.start)
        with ContentSwitcher(initial=self.start, id="panes"):
            yield first
        yield KeyBar(classes="key-bar")

    def on_mount(self) -> None:
        self._arrive(self.start)

    def _make(self, name: str) -> Widget:
        pane = self.factories[name]()
        pane.id = name
        self.panes[name] = pane
        return pane

    @property
    def current(self) -> Optional[str]:
        return self.query_one(ContentSwitcher).current

    async def show_pane(self, name: str) -> None:
        switcher = self.query_one(ContentSwitcher)
        if switcher.current == name:
            return
        if name not in self.panes:
            await switcher.add_content(self._make(name), set_current=True)
            self.call_after_refresh(self._arrive, name)  # focusable once laid out
            return
        with self.app.batch_update():  # one frame for the switch, the focus and the title
            switcher.current = name
            self._arrive(name)

    def _arrive(self, name: str) -> None:
        pane: Any = self.panes[name]
        self.app.sub_title = getattr(pane, "TITLE", name.title())
        target = getattr(pane, "FOCUS", None)
        widget = pane.query_one(target) if target else pane
        if widget.focusable:
            widget.focus()
        if hasattr(pane, "arrived"):
            pane.arrived()
