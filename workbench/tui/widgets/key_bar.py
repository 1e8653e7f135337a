"""The footer: the keys of the focused widget, its screen and the app, as one line of text.

Textual's ``Footer`` re-mounts one widget per key whenever the bindings change (every
screen switch), which costs ~0.1 s on a busy 2-core machine; this bar repaints one line.
"""
from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is not self.screen:
            return
        seen: set[str] = set()
        text = Text(no_wrap=True, overflow="crop")
        for _node, binding, enabled, _tip in screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            text.append(f" {self.app.get_key_display(binding)} ", style="bold reverse" if enabled else "dim reverse")
            text.append(f"{binding.description} ", style="" if enabled else "dim")
        self.update(text, layout=False)
