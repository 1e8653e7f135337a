"""The learning-rate schedule of a spec per epoch, its averaging windows shaded.

Computed by :func:`workbench.faces.forms.schedule_view` (shared with the notebook's figures)
with the engine's own torch-free :func:`~workbench.engine.schedules.build_schedule` and
:func:`~workbench.engine.plan.build_plan`, so the preview is the schedule the run
executes. Per-iteration schedules (cyclic, linear, cosine) are drawn at a nominal
``workbench.faces.forms.NOMINAL_IPE`` iterations per epoch (the real count depends on the data).
"""
from __future__ import annotations

from typing import Any

from workbench.faces.forms import schedule_view
from workbench.tui.widgets.line_chart import ChartData, LineChart, Series, Span


def chart_for(spec: Any, points: int = 160) -> ChartData:
    view = schedule_view(spec, points=points)
    spans = [Span(w.start, w.end, view.label(w)) for w in view.windows]
    return ChartData([Series("", view.x, view.lr, "yellow")], spans, x_label="epoch", y_format="{:.3g}")


class LRPreview(LineChart):
    """Attributes down: the screen calls :meth:`show` with a validated spec (or None)."""

    def show(self, spec: Any) -> None:
        if spec is None:
            self.plot(ChartData(empty="(invalid spec)"))
        else:
            self.plot(chart_for(spec))
