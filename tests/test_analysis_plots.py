"""Figures carry the right numbers: curves are per-epoch mean ± sample std over seeds, the
samples view finds the averaging start, samples and window averages, the line plot has
train loss and test error on two axes. Asserts on data, never on pixels."""
import numpy as np
import pytest

from workbench.analysis.plots import (curve_stats, plot_line, plot_samples_vs_average, plot_ta_curves,
                                      samples_vs_average_data, to_png)
from workbench.analysis.runs import AnalysisError, history_from_epochs


def hist(seed, epochs=6):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, epochs + 1)
    out = {"backbone/test_acc": (steps, 50 + 5 * steps + rng.normal(size=epochs))}
    out["average/test_acc"] = (np.array([4, 6]), 80 + rng.normal(size=2))
    return out


def test_curve_stats_are_numpy_mean_and_sample_std_per_epoch():
    hs = [hist(s) for s in range(3)]
    st = curve_stats(hs, "backbone/test_acc")
    table = np.stack([h["backbone/test_acc"][1] for h in hs])
    np.testing.assert_array_equal(st.steps, np.arange(1, 7))
    np.testing.assert_allclose(st.mean, table.mean(0))
    np.testing.assert_allclose(st.std, table.std(0, ddof=1))
    assert curve_stats(hs, "nope") is None
    # a run evaluated at fewer epochs still lines up by epoch
    short = {"backbone/test_acc": (np.array([2, 4]), np.array([1.0, 3.0]))}
    st2 = curve_stats([hs[0], short], "backbone/test_acc")
    assert list(st2.n) == [1, 2, 1, 2, 1, 1]
    assert st2.mean[1] == pytest.approx((hs[0]["backbone/test_acc"][1][1] + 1.0) / 2)
    assert np.isnan(st2.std[0])


def test_ta_curves_plot_one_line_per_group_and_series_with_the_means():
    groups = {"SGD": [{"backbone/test_acc": hist(s)["backbone/test_acc"]} for s in range(2)],
              "PSWA": [hist(s + 10) for s in range(3)]}
    fig = plot_ta_curves(groups)
    ax = fig.axes[0]
    assert [l.get_label() for l in ax.lines] == ["SGD backbone", "PSWA backbone", "PSWA average"]
    np.testing.assert_allclose(ax.lines[2].get_ydata(), curve_stats(groups["PSWA"], "average/test_acc").mean)
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), [4, 6])
    assert len(ax.collections) == 3  # one ± std band per curve
    assert to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def dswa_history():
    """8 epochs: backbone 1-4, window 1 on epochs 5-6, window 2 on 7-8; average evaluated every epoch."""
    epochs = []
    for e in range(1, 9):
        row = {"epoch": e, "backbone/test_acc": 60.0 + e}
        if e >= 5:
            row.update({"average/new_samples": 1.0, "window": 1.0 if e <= 6 else 2.0, "average/test_acc": 80.0 + e})
        epochs.append(row)
    return history_from_epochs(epochs)


def test_samples_view_finds_start_samples_and_window_averages():
    v = samples_vs_average_data(dswa_history())
    assert v.start_epoch == 4 and v.start_acc == 64.0
    assert list(v.sample_epochs) == [5, 6, 7, 8] and list(v.sample_accs) == [65.0, 66.0, 67.0, 68.0]
    assert list(v.sample_windows) == [1, 1, 2, 2]
    assert [(w.window, w.first_epoch, w.last_epoch, w.average_acc) for w in v.windows] == [
        (1, 5, 6, 86.0), (2, 7, 8, 88.0)]
    fig = plot_samples_vs_average(v)
    lines = fig.axes[0].lines
    assert list(lines[0].get_ydata()) == [64.0, 64.0]  # "SGD" at the averaging start
    assert list(lines[2].get_ydata()) == [65.0, 66.0, 67.0, 68.0]  # the samples
    assert list(lines[3].get_ydata()) == [86.0, 86.0] and list(lines[4].get_ydata()) == [88.0, 88.0]
    with pytest.raises(AnalysisError, match="no samples"):
        samples_vs_average_data({"backbone/test_acc": (np.array([1]), np.array([1.0]))})


def test_line_plot_has_train_loss_and_test_error_on_two_axes():
    t = np.linspace(-0.5, 1.5, 5)
    loss, err = (t - 0.5) ** 2 + 0.1, 20 + 10 * (t - 0.5) ** 2
    fig = plot_line(t, loss, err, labels=("SWA", "DSWA"))
    ax, ax2 = fig.axes
    np.testing.assert_allclose(ax.lines[0].get_ydata(), loss)
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), err)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), t)
    assert {a.get_text() for a in ax.texts} == {"SWA", "DSWA"}
