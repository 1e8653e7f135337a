"""Filters of the Compare screen: one select per facet (preset, variant, model, dataset, status).

Attributes down: :meth:`RunFilters.set_options` with the values found in the store.
Messages up: :class:`RunFilters.Changed` with ``{facet: value or None}``.
"""
from __future__ import annotations

from typing import Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Select

from workbench.faces.views import FACETS


class RunFilters(Horizontal):
    class Changed(Message):
        def __init__(self, filters: dict[str, Optional[str]]) -> None:
            super().__init__()
            self.filters = filters

    def compose(self) -> ComposeResult:
        for facet in FACETS:
            yield Select([], prompt=f"{facet}: all", id=f"filter-{facet}", compact=True, allow_blank=True)

    def set_options(self, values: dict[str, list[str]]) -> None:
        with self.prevent(Select.Changed):
            for facet in FACETS:
                sel = self.query_one(f"#filter-{facet}", Select)
                keep = sel.value
                sel.set_options([(v, v) for v in values.get(facet, [])])
                if keep is not Select.NULL and keep in values.get(facet, []):
                    sel.value = keep

    @property
    def filters(self) -> dict[str, Optional[str]]:
        out = {}
        for facet in FACETS:
            v = self.query_one(f"#filter-{facet}", Select).value
            out[facet] = None if v is Select.NULL else str(v)
        return out

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))
