"""The learning-rate schedule of a spec per epoch, its averaging windows shaded.

Computed with the engine's own torch-free :func:`~workbench.engine.schedules.build_schedule`
and :func:`~workbench.engine.plan.build_plan`, so the preview is the schedule the run
executes. Per-iteration schedules (cyclic, linear, cosine) are drawn at a nominal
``NOMINAL_IPE`` iterations per epoch (the real count depends on the data).
"""
from __future__ import annotations

from typing import Any

from workbench.tui.widgets.line_chart import ChartData, LineChart, Series, Span

NOMINAL_IPE = 8


def plan_summary(spec: Any) -> str:
    """One line: the windows of the spec's averaging plan."""
    from workbench.engine.plan import build_plan

    plan = build_plan(spec.averaging, spec.budget.epochs)
    if plan.ema is not None:
        return f"ema from epoch {plan.ema.start} (decay {plan.ema.decay})"
    if not plan.windows:
        return "no averaging (backbone only)"
    ws = plan.windows
    shown = ", ".join(f"{w.start}-{w.end}{'↺' if w.restart else ''}" for w in ws[:4])
    more = f", … ({len(ws)} in all)" if len(ws) > 4 else ""
    return f"{len(ws)} window{'s' if len(ws) > 1 else ''}: {shown}{more}"


def chart_for(spec: Any, points: int = 160) -> ChartData:
    from workbench.engine.plan import build_plan
    from workbench.engine.schedules import RunShape, build_schedule

    epochs = spec.budget.epochs
    plan = build_plan(spec.averaging, epochs)
    ipe = max(1, min(NOMINAL_IPE, points // max(epochs, 1)))
    shape = RunShape(epochs, ipe, plan.averaging_start)
    fn = build_schedule(spec.schedule, shape)
    xs = [it / ipe for it in range(shape.total_iters)] + [float(epochs)]
    ys = [fn(it) for it in range(shape.total_iters)] + [fn(shape.total_iters - 1)]
    spans = [Span(w.start, w.end, f"w{w.index + 1}") for w in plan.windows]
    if plan.ema is not None:
        spans = [Span(plan.ema.start, epochs, "ema")]
    return ChartData([Series("", xs, ys, "yellow")], spans, x_label="epoch", y_format="{:.3g}")


class LRPreview(LineChart):
    """Attributes down: the screen calls :meth:`show` with a validated spec (or None)."""

    def show(self, spec: Any) -> None:
        if spec is None:
            self.plot(ChartData(empty="(invalid spec)"))
        else:
            self.plot(chart_for(spec))
