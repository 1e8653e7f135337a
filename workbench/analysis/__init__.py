"""Analyses of finished runs: what the paper measures across runs.

=================  ==========================================================
``tables``         mean ± std tables over seeds in the paper's layout (Tables 1-4)
``plots``          TA curves (Figures 3, 8, 9), samples vs average (1, 2, 7),
                   the line between two solutions (4, 5)
``interpolate``    train loss / test error along w(t) = (1 - t) w_A + t w_B
``flatness``       top Hessian eigenvalue, random-perturbation sharpness, sample spread
``runs``           reading runs, histories, specs, weights and samples from MLflow
=================  ==========================================================

The computations take plain data (run-record dicts, ``{metric: (steps, values)}``
histories, state dicts), so they work in a notebook on ``workbench.run`` results;
the ``*_for_parent`` / ``*_between_runs`` / ``*_of_run`` functions read MLflow.
Importing this package is cheap: the names below load their module on first use.
"""
from __future__ import annotations

from workbench.lazy import lazy_exports

_EXPORTS = {
    "AnalysisError": "runs", "fetch_runs": "runs", "fetch_run": "runs", "metric_histories": "runs",
    "history_from_epochs": "runs", "load_run_spec": "runs", "load_weights": "runs", "load_samples": "runs",
    "log_analysis": "runs",
    "Table": "tables", "aggregate": "tables", "table_for_parent": "tables", "write_report": "tables",
    "plot_ta_curves": "plots", "plot_samples_vs_average": "plots", "plot_line": "plots", "to_png": "plots",
    "plot_run_samples": "plots", "plot_study_curves": "plots", "curve_stats": "plots",
    "samples_vs_average_data": "plots",
    "LineResult": "interpolate", "evaluate_line": "interpolate", "line_between_runs": "interpolate",
    "line_points": "interpolate",
    "FlatnessReport": "flatness", "flatness_of_run": "flatness", "hessian_top_eigenvalue": "flatness",
    "perturbation_sharpness": "flatness", "sample_spread": "flatness", "top_eigenvalue": "flatness",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
