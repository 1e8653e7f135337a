"""Figures the panels and notebooks share: a spec's LR schedule with its averaging windows
(the paper's Figure 6 and its variants), from :func:`workbench.faces.forms.schedule_view` (the
terminal app's preview draws the same), computed with the engine's own torch-free
:func:`~workbench.engine.schedules.build_schedule` and :func:`~workbench.engine.plan.build_plan`,
so what is drawn is what a run executes.

Figures are built without pyplot (like :mod:`workbench.analysis.plots`), so nothing here
switches a notebook's backend and rendering from a background thread is safe; show one
with :func:`png` in an ``ipywidgets.Image`` or ``IPython.display.Image``.
"""
from __future__ import annotations

from typing import Any

from workbench.faces import forms
from workbench.faces.forms import ScheduleView, schedule_view


def plan_summary(spec: Any) -> str:
    """One line: the windows of the spec's averaging plan (↺ = restart at its end), the
    first six, with what the numbers are."""
    return forms.plan_summary(spec, most=6, explain=True)


def plot_schedule(spec_or_view: Any, *, ax=None, title: str = "", width: float = 6.4, height: float = 3.0):
    """LR per epoch, each averaging window shaded and labelled (w1, w2, ..., or its
    weighting for a running average: ``ema 0.999``), a dotted line where the backbone
    restarts from a window's average."""
    from workbench.analysis.plots import new_figure

    view = spec_or_view if isinstance(spec_or_view, ScheduleView) else schedule_view(spec_or_view)
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(width, height)
    for i, win in enumerate(view.windows):
        ax.axvspan(win.start, win.end, color=f"C{1 + i % 2}", alpha=0.18, linewidth=0)
        ax.text((win.start + win.end) / 2, 1.0, view.label(win), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize="x-small")
        if win.restart:
            ax.axvline(win.end, color="k", linestyle=":", linewidth=0.8)
    ax.plot(view.x, view.lr, color="C0", linewidth=1.2, drawstyle="steps-post")
    ax.set_xlim(0, view.epochs)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize="medium", pad=12)
    return fig


def png(fig, dpi: int = 100) -> bytes:
    from workbench.analysis.plots import to_png

    return to_png(fig, dpi=dpi)
