"""Jupyter face of the workbench: ipywidgets panels over the same launcher and store as
the terminal app (:mod:`workbench.tui`), and figure helpers for notebooks.

==========================  ===============================================================
``workbench_panel(...)``    a ``Tab`` of the three panels sharing one launcher and store
``LaunchPanel``             preset, scale, seeds and the form generated from the spec;
                            field-level validation; launches runs and studies
``RunsPanel``               live table and test-accuracy plot of launched runs; cancel
``ComparePanel``            runs and studies in MLflow: mean ± std over seeds, spec diff, curves
``schedule_view``,          a spec's LR schedule and averaging windows (Figure 6), from the
``plot_schedule``           engine's own schedule and plan
==========================  ===============================================================

Importing this package is cheap (no torch, MLflow or Textual); the names load their module
on first use. The panels need no running kernel, so tests build them with fakes.
"""
from __future__ import annotations

from workbench.lazy import lazy_exports

_EXPORTS = {
    "LaunchPanel": "launch", "RunsPanel": "runs", "ComparePanel": "compare",
    "WorkbenchPanel": "app", "workbench_panel": "app",
    "SpecForm": "form", "ScheduleView": "figures", "schedule_view": "figures", "plot_schedule": "figures",
    "plan_summary": "figures", "png": "figures", "stats_tables": "compare",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
