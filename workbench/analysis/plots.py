"""The paper's figures from plain data, with thin wrappers that read MLflow.

* :func:`plot_ta_curves`: test accuracy per epoch, backbone and average, mean ± std
  bands over seeds, one colour per group (Figures 3, 8, 9).
* :func:`plot_samples_vs_average`: the backbone's TA when averaging starts ("SGD"),
  each sample's TA ("SWA samples") and each window's average ("SWA") (Figures 1, 2, 7).
* :func:`plot_line`: train loss and test error along the line between two solutions,
  on two y axes (Figures 4, 5).

Inputs are histories ``{metric: (steps, values)}`` (see :mod:`workbench.analysis.runs`;
:func:`~workbench.analysis.runs.history_from_epochs` converts a ``workbench.run``
result). Each function returns a ``matplotlib.figure.Figure`` built without pyplot,
so nothing here switches the global backend (a notebook keeps its own) and rendering
goes through Agg: :func:`to_png` gives PNG bytes, :func:`save` writes a file. The
numbers behind a figure come from the ``*_data`` / :func:`curve_stats` functions,
which tests and notebooks can call directly.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from workbench.analysis.runs import AnalysisError, History

BACKBONE_TA, AVERAGE_TA = "backbone/test_acc", "average/test_acc"
SERIES_NAMES = {BACKBONE_TA: "backbone", AVERAGE_TA: "average", "backbone/train_acc": "backbone (train)",
                "backbone/test_loss": "backbone", "average/test_loss": "average"}


def new_figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _epoch_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def to_png(fig, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # a pyplot-free Figure renders through Agg
    return buf.getvalue()


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


# ----------------------------------------------------------------------------- (a) TA curves


@dataclass
class CurveStats:
    """Mean and sample std (ddof=1; nan where n < 2) over runs, per step; ``n`` runs per step."""

    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray


def curve_stats(histories: Sequence[Mapping[str, tuple]], metric: str) -> Optional[CurveStats]:
    """Per-step mean ± std of ``metric`` over the runs that logged it at that step (the
    union of steps: runs evaluated at different epochs still line up by epoch). None when
    no run has the metric."""
    series = [h[metric] for h in histories if metric in h and len(h[metric][0])]
    if not series:
        return None
    steps = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s, _ in series]))
    table = np.full((len(series), len(steps)), np.nan)
    for i, (s, v) in enumerate(series):
        table[i, np.searchsorted(steps, np.asarray(s))] = np.asarray(v, dtype=float)
    n = np.sum(~np.isnan(table), axis=0)
    mean = np.nanmean(table, axis=0)
    std = np.full(len(steps), np.nan)
    many = n > 1
    if many.any():
        std[many] = np.nanstd(table[:, many], axis=0, ddof=1)
    return CurveStats(steps, mean, std, n)


def plot_ta_curves(
    groups: Mapping[str, Sequence[Mapping[str, tuple]]],
    metrics: Sequence[str] = (BACKBONE_TA, AVERAGE_TA),
    *,
    title: str = "",
    ylabel: str = "test accuracy (%)",
    ax=None,
):
    """One curve per (group, metric): the mean over the group's runs, a band of ± one
    sample std where a step has two runs or more. Colour = group, line style = metric
    (backbone solid, average dashed with markers: the average is often evaluated only at
    some epochs). Groups missing a metric (e.g. an SGD group has no average) skip it.
    Line labels are ``"<group> <series>"``; the figure's axes keep them in order."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure()
    styles = ["-", "--", ":", "-."]
    for gi, (name, hists) in enumerate(groups.items()):
        colour = f"C{gi % 10}"
        for mi, metric in enumerate(metrics):
            st = curve_stats(hists, metric)
            if st is None:
                continue
            label = f"{name} {SERIES_NAMES.get(metric, metric)}" if len(metrics) > 1 else name
            sparse = metric.startswith("average/")
            ax.plot(st.steps, st.mean, styles[mi % 4], color=colour, label=label,
                    marker="o" if sparse else None, markersize=3)
            ok = st.n > 1
            if ok.any():
                ax.fill_between(st.steps[ok], (st.mean - st.std)[ok], (st.mean + st.std)[ok], color=colour,
                                alpha=0.2, linewidth=0)
    _epoch_axis(ax)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- (b) samples vs average


@dataclass
class WindowView:
    window: int  # 1-based
    first_epoch: int  # epoch of the window's first sample
    last_epoch: int
    average_acc: float  # the window's average TA at its last evaluation (nan if never evaluated)
    average_epoch: int


@dataclass
class SamplesView:
    """The numbers of Figures 1, 2, 7 for one run. ``start_epoch`` is the epoch before the
    first sample (the averaging start); ``start_acc`` the backbone's TA there ("SGD"; None
    when averaging starts at epoch 0, or the backbone was not evaluated then). Sample TA
    is the backbone's TA at the sample's epoch (nan where it was not evaluated)."""

    start_epoch: int
    start_acc: Optional[float]
    sample_epochs: np.ndarray
    sample_accs: np.ndarray
    sample_windows: np.ndarray
    windows: list[WindowView] = field(default_factory=list)


def samples_vs_average_data(history: History) -> SamplesView:
    """Sample epochs are the epochs with ``average/new_samples`` > 0. Pitfall: with several
    samples per epoch (``averaging.cycle`` shorter than an epoch) only the last one's TA is
    known (the epoch-end evaluation); with ``budget.eval_every`` > 1 some are nan."""
    if "average/new_samples" not in history:
        raise AnalysisError("samples plot: the run took no samples (no average/new_samples metric)")
    s, v = history["average/new_samples"]
    epochs = np.asarray(s)[np.asarray(v) > 0]
    if not len(epochs):
        raise AnalysisError("samples plot: the run took no samples")
    bb = dict(zip(*(np.asarray(a).tolist() for a in history.get(BACKBONE_TA, ([], [])))))
    win = dict(zip(*(np.asarray(a).tolist() for a in history.get("window", ([], [])))))
    avg = dict(zip(*(np.asarray(a).tolist() for a in history.get(AVERAGE_TA, ([], [])))))
    accs = np.array([bb.get(int(e), np.nan) for e in epochs], dtype=float)
    wins = np.array([int(win.get(int(e), 1)) for e in epochs], dtype=np.int64)  # EMA: no windows, one "window"
    start = int(epochs[0]) - 1
    views = []
    for w in dict.fromkeys(wins.tolist()):
        ep = epochs[wins == w]
        evald = [e for e in sorted(avg) if ep[0] <= e <= ep[-1]]
        last = evald[-1] if evald else int(ep[-1])
        views.append(WindowView(int(w), int(ep[0]), int(ep[-1]), float(avg.get(last, np.nan)), int(last)))
    return SamplesView(start, bb.get(start), epochs.astype(np.int64), accs, wins, views)


def plot_samples_vs_average(data: History | SamplesView, *, title: str = "", ax=None,
                            labels: tuple[str, str, str] = ("SGD", "SWA samples", "SWA")):
    """Figure 1 / 2 / 7 for one run: a dashed line (and a marker at the averaging start)
    at the backbone's TA when averaging starts, the samples' TA as points, and each
    window's average TA as a solid segment over the window. Lines, in order: the SGD line
    (if known), the samples (markers only), one segment per window."""
    view = data if isinstance(data, SamplesView) else samples_vs_average_data(data)
    fig, ax = (ax.figure, ax) if ax is not None else new_figure()
    x0, x1 = view.start_epoch, int(view.sample_epochs[-1])
    if view.start_acc is not None:
        ax.plot([x0, x1], [view.start_acc, view.start_acc], "--", color="C0", label=labels[0])
        ax.plot([x0], [view.start_acc], "o", color="C0")
    ax.plot(view.sample_epochs, view.sample_accs, "o", color="C1", markersize=4, linestyle="none", label=labels[1])
    for i, w in enumerate(view.windows):
        ax.plot([w.first_epoch, w.last_epoch], [w.average_acc, w.average_acc], "-", color="C2", linewidth=2,
                label=labels[2] if i == 0 else None)
    _epoch_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- (c) the line


def plot_line(t: Sequence[float], train_loss: Sequence[float], test_error: Sequence[float], *,
              labels: tuple[str, str] = ("A", "B"), title: str = "", ax=None):
    """Figures 4 / 5: train loss (left axis, solid) and test error in % (right axis,
    dashed) against t, with w(t) = (1 - t) w_A + t w_B; dotted verticals at t = 0 and 1
    are labelled with the two solutions' names. Returns the figure; ``fig.axes`` is
    ``[loss axis, error axis]``, each with its one data line first."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure()
    t = np.asarray(t, dtype=float)
    ax.plot(t, np.asarray(train_loss, dtype=float), "-o", color="C0", markersize=3, label="train loss")
    ax.set_xlabel("t   (w = (1 - t) w_A + t w_B)")
    ax.set_ylabel("train loss", color="C0")
    ax2 = ax.twinx()
    ax2.plot(t, np.asarray(test_error, dtype=float), "--s", color="C3", markersize=3, label="test error (%)")
    ax2.set_ylabel("test error (%)", color="C3")
    for x, name in zip((0.0, 1.0), labels):
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize="small")
    if title:
        ax.set_title(title, pad=14)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize="small", loc="upper center")
    return fig


def plot_line_result(result, *, title: str = "", ax=None):
    """:func:`plot_line` of an :class:`~workbench.analysis.interpolate.LineResult`."""
    return plot_line(result.t, result.train_loss, result.test_error, labels=result.labels, title=title, ax=ax)


# ----------------------------------------------------------------------------- from MLflow


def plot_run_samples(run_id: str, *, uri: Optional[str] = None, title: Optional[str] = None):
    """:func:`plot_samples_vs_average` of a logged run."""
    from workbench.analysis.runs import fetch_run, metric_histories

    rec = fetch_run(run_id, uri)
    hist = metric_histories(run_id, (BACKBONE_TA, AVERAGE_TA, "average/new_samples", "window"), uri)
    tags = rec["tags"]
    default = " ".join(x for x in (tags.get("variant", "").upper(), tags.get("model"), tags.get("dataset")) if x)
    return plot_samples_vs_average(hist, title=default if title is None else title)


def plot_study_curves(parent_run_id: str, group_by: str | Sequence[str] = "averaging.variant", *,
                      metrics: Sequence[str] = (BACKBONE_TA, AVERAGE_TA), uri: Optional[str] = None,
                      title: str = "", labels: Optional[Mapping[str, str]] = None):
    """:func:`plot_ta_curves` of a study: its finished children grouped by one param or a
    tuple of them (a group's name joins the values' display names with spaces)."""
    from workbench.analysis.tables import PAPER_NAMES
    from workbench.analysis.runs import fetch_runs, group_runs, metric_histories

    runs = fetch_runs(parent_run_id, uri=uri)
    if not runs:
        raise AnalysisError(f"run {parent_run_id}: no finished child runs")
    names = {**PAPER_NAMES, **(labels or {})}
    groups = {}
    for key, rs in group_runs(runs, group_by).items():
        name = " ".join(names.get(v, v) for v in ((key,) if isinstance(key, str) else key))
        groups[name] = [metric_histories(r["run_id"], metrics, uri) for r in rs]
    return plot_ta_curves(groups, metrics, title=title)
