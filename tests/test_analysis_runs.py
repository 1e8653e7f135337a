"""The analyses on real logged runs: a study of two digits runs (SWA, DSWA, samples kept)
and a pair of BN runs. The line between two solutions reproduces each run's logged test
metrics at t = 0 and t = 1; flatness, sample spread, figures and tables read MLflow."""
import shutil

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import workbench
from workbench.analysis.tables import write_report
from workbench.analysis.flatness import flatness_of_run
from workbench.analysis.interpolate import line_between_runs
from workbench.analysis.plots import plot_run_samples, plot_study_curves
from workbench.analysis.runs import AnalysisError, load_samples, load_weights, metric_histories
from workbench.tracking.mlflow_sink import ensure_experiment


@pytest.fixture(scope="module")
def study(tmp_path_factory, _mlflow_template):
    """Two digits smoke runs under a parent (SWA and DSWA, samples kept), and two tiny BN-MLP
    runs on synthetic data with the exact pooled BN estimator."""
    torch.set_num_threads(1)
    store = tmp_path_factory.mktemp("analysis-store")
    shutil.copy(_mlflow_template, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = client.create_run(ensure_experiment(client, uri, "workbench"), run_name="study").info.run_id
    common = [f"tracking.uri={uri}", "threads=1", "device=cpu", "model.options.channels1=8",
              "model.options.channels2=16", "model.options.hidden=32"]
    swa = workbench.run("digits-swa", scale="smoke", parent_run_id=parent,
                        overrides=common + ["averaging.keep_samples=true"])
    dswa = workbench.run("digits-dswa", scale="smoke", parent_run_id=parent, overrides=common)
    client.set_terminated(parent)
    bn = {"model": {"name": "mlp", "options": {"hidden": 32, "batchnorm": True}},
          "dataset": {"name": "synthetic", "options": {"n_train": 256, "n_test": 128, "size": 8, "channels": 1}},
          "schedule": {"name": "constant", "lr": 0.05}, "budget": {"epochs": 5, "batch_size": 32},
          "device": "cpu", "threads": 1, "tracking": {"uri": uri}}
    bn_a = workbench.run({**bn, "averaging": {"variant": "swa", "start": 2, "bn_estimator": "pooled"}})
    bn_b = workbench.run({**bn, "averaging": {"variant": "dswa", "start": 1, "bn_estimator": "pooled"}})
    return {"uri": uri, "parent": parent, "swa": swa, "dswa": dswa, "bn_a": bn_a, "bn_b": bn_b, "client": client}


def test_line_endpoints_reproduce_the_runs_logged_metrics(study, tmp_path):
    uri, a, b = study["uri"], study["swa"], study["dswa"]
    res = line_between_runs(a.run_id, b.run_id, ts=[-0.5, 0.0, 0.5, 1.0, 1.5], uri=uri, device="cpu",
                            out_dir=tmp_path, log=True)
    assert res.labels == ("SWA", "DSWA") and not res.bn_recalibrated  # toy CNN: no BN
    for t, run in ((0.0, a), (1.0, b)):
        p = res.at(t)
        assert p["t"] == t
        assert p["test_acc"] == pytest.approx(run.metrics["final/average_test_acc"], abs=1e-9)
        assert p["test_loss"] == pytest.approx(run.metrics["final/average_test_loss"], rel=1e-5)
    assert np.all(np.isfinite(res.train_loss)) and res.train_loss.max() > res.train_loss.min()
    text = (tmp_path / "line.csv").read_text().splitlines()
    assert text[0] == "t,train_loss,train_acc,test_loss,test_acc,test_error" and len(text) == 6
    assert (tmp_path / "line.png").stat().st_size > 0
    logged = {f.path for f in study["client"].list_artifacts(a.run_id, "analysis")}
    assert f"analysis/line_{b.run_id[:8]}_average-average.csv" in logged
    # the backbone of a run without BN: exact too
    bb = line_between_runs(a.run_id, b.run_id, which_a="backbone", ts=[0.0], uri=uri, device="cpu")
    assert bb.at(0.0)["test_acc"] == pytest.approx(a.metrics["final/backbone_test_acc"], abs=1e-9)


def test_line_with_bn_recalibrates_and_reproduces_pooled_averages(study):
    a, b = study["bn_a"], study["bn_b"]
    res = line_between_runs(a.run_id, b.run_id, ts=[0.0, 0.5, 1.0], uri=study["uri"], device="cpu")
    assert res.bn_recalibrated
    assert res.at(0.0)["test_acc"] == pytest.approx(a.metrics["final/average_test_acc"], abs=1e-9)
    assert res.at(1.0)["test_acc"] == pytest.approx(b.metrics["final/average_test_acc"], abs=1e-9)
    assert res.at(1.0)["test_loss"] == pytest.approx(b.metrics["final/average_test_loss"], rel=1e-4)


def test_line_between_different_models_or_data_is_refused(study):
    with pytest.raises(AnalysisError, match="differ in model.name"):
        line_between_runs(study["swa"].run_id, study["bn_a"].run_id, uri=study["uri"], device="cpu")


def test_flatness_of_a_run_and_the_spread_of_its_samples(study):
    uri, a = study["uri"], study["swa"]
    rep = flatness_of_run(a.run_id, uri=uri, device="cpu", batches=2, batch_size=256, iters=8, tol=1e-2,
                          rhos=(1e-7, 0.1), directions=2, log=True)
    assert rep.examples == 512 and rep.train_loss > 0
    assert rep.hessian.value > 0 and rep.hessian.iterations <= 8
    assert abs(rep.perturbation.mean[0]) < 1e-5 and rep.perturbation.mean[1] > 0
    [w] = rep.spread  # SWA: one window of 4 samples (smoke: epochs 5-8)
    assert w.window == 1 and w.samples == [1, 2, 3, 4] and w.variance > 0
    # the samples' mean is the run's logged average (its running mean, in fp32)
    samples = load_samples(a.run_id, uri)
    avg = load_weights(a.run_id, "average", uri)
    for name in samples[0][2]:
        mean = torch.stack([s[2][name] for s in samples]).mean(0)
        torch.testing.assert_close(mean, avg[name], atol=1e-6, rtol=1e-5)
    m = study["client"].get_run(a.run_id).data.metrics
    assert m["flatness/average/hessian_top"] == pytest.approx(rep.hessian.value)
    assert "flatness/average/perturb_rho0.1" in m and "flatness/samples/w01_variance" in m
    assert "analysis/flatness_average.json" in {f.path for f in study["client"].list_artifacts(a.run_id, "analysis")}
    # no samples kept: spread skipped under "auto"
    rep_b = flatness_of_run(study["dswa"].run_id, uri=uri, device="cpu", batches=1, hessian=False, perturb=False)
    assert rep_b.spread is None and rep_b.hessian is None


def test_figures_and_report_of_the_study(study, tmp_path):
    uri, a = study["uri"], study["swa"]
    fig = plot_run_samples(a.run_id, uri=uri)
    h = metric_histories(a.run_id, ["backbone/test_acc"], uri)["backbone/test_acc"]
    lines = fig.axes[0].lines
    assert list(lines[0].get_ydata()) == [h[1][3]] * 2  # "SGD": backbone TA at epoch 4, the averaging start
    assert list(lines[2].get_xdata()) == [5, 6, 7, 8] and list(lines[2].get_ydata()) == list(h[1][4:8])
    assert lines[3].get_ydata()[0] == pytest.approx(a.metrics["final/average_test_acc"])
    curves = plot_study_curves(study["parent"], uri=uri)
    assert [l.get_label() for l in curves.axes[0].lines] == ["SWA backbone", "SWA average", "DSWA backbone",
                                                            "DSWA average"]
    t, files = write_report(study["parent"], tmp_path, uri=uri)
    assert t.rows == [("swa",), ("dswa",)] and t.cols == [("toy_cnn",)]
    assert t.cell(("dswa",), ("toy_cnn",)).values == [study["dswa"].metrics["final/average_test_acc"]]
    assert (tmp_path / "table.md").read_text() == t.to_markdown() and (tmp_path / "curves.png").stat().st_size
    logged = {f.path for f in study["client"].list_artifacts(study["parent"], "report")}
    assert logged == {"report/table.md", "report/table.html", "report/table.csv", "report/curves.png"}
