"""Mean ± std tables: numbers equal numpy's, the paper's layouts and bolding, output formats,
CSV round trip, and fetching a study's children from MLflow page by page."""
import math

import numpy as np
import pytest

from workbench.analysis.tables import Table, aggregate, table_for_parent
from workbench.analysis.runs import AnalysisError, fetch_runs

ACC = {  # (variant, model) -> final accuracies over seeds
    ("none", "vgg16"): [55.1, 55.9, 54.8],
    ("swa", "vgg16"): [65.9, 66.2, 65.6],
    ("dswa", "vgg16"): [68.4, 68.1, 68.8],
    ("none", "preresnet164"): [70.1, 71.2, 70.3],
    ("swa", "preresnet164"): [76.4, 76.9, 76.0],
    ("dswa", "preresnet164"): [77.2, 77.7, 76.9],
}


def record(i, variant, model, acc, optimizer="sgd", dataset="cifar100"):
    metrics = {"final/backbone_test_acc": acc - (0 if variant == "none" else 10.0),
               "final/backbone_test_loss": 1.0 / acc}
    if variant != "none":
        metrics["final/average_test_acc"] = acc
        metrics["final/average_test_loss"] = 1.0 / acc
    return {"run_id": f"r{i:03d}", "params": {"averaging.variant": variant, "model.name": model, "seed": str(i % 3),
                                              "optimizer.name": optimizer, "dataset.name": dataset},
            "metrics": metrics, "tags": {"variant": variant}}


@pytest.fixture
def runs():
    out, i = [], 0
    for (variant, model), accs in ACC.items():
        for a in accs:
            out.append(record(i, variant, model, a))
            i += 1
    return out


def test_cells_are_numpy_mean_and_sample_std_and_the_none_row_uses_the_backbone(runs):
    t = aggregate(runs)
    assert t.rows == [("none",), ("swa",), ("dswa",)]  # the paper's order, not alphabetical
    assert t.cols == [("vgg16",), ("preresnet164",)]
    for (variant, model), accs in ACC.items():
        cell = t.cell((variant,), (model,))
        assert cell.n == 3
        assert cell.mean == pytest.approx(np.mean(accs), abs=1e-12)
        assert cell.std == pytest.approx(np.std(accs, ddof=1), abs=1e-12)
        assert cell.metric == ("final/backbone_test_acc" if variant == "none" else "final/average_test_acc")
    md = t.to_markdown()
    assert "| SGD |" in md and "| DSWA |" in md and "VGG16" in md and "PreResNet-164" in md
    assert "ddof=1" in md and "n = 3 runs per cell" in md


def test_best_per_column_is_bold_max_for_accuracy_min_for_loss(runs):
    t = aggregate(runs)
    assert t.best() == {(("dswa",), ("vgg16",)), (("dswa",), ("preresnet164",))}
    md = t.to_markdown()
    assert f"**{np.mean(ACC['dswa', 'vgg16']):.2f}** ± {np.std(ACC['dswa', 'vgg16'], ddof=1):.2f}" in md
    assert md.count("**") == 4
    loss = aggregate(runs, metric="final/average_test_loss")  # the SGD row: final/backbone_test_loss
    assert not loss.higher_is_better and loss.digits == 4
    assert loss.cell(("none",), ("vgg16",)).metric == "final/backbone_test_loss"
    assert loss.best() == {(("dswa",), ("vgg16",)), (("dswa",), ("preresnet164",))}  # 1/acc: min is the best
    html = t.to_html()
    assert html.count("<b>") == 2 and "<sub>±" in html and "ddof=1" in html


def test_row_bolding_within_column_groups_table1_layout():
    runs = []
    for i, (ds, model, variant, acc) in enumerate([
        ("cora", "gcn", "none", 81.2), ("cora", "gcn", "swa", 81.3), ("citeseer", "gcn", "none", 70.9),
        ("citeseer", "gcn", "swa", 70.8), ("cora", "gat", "none", 81.6), ("cora", "gat", "swa", 81.7),
    ]):
        runs.append(record(i, variant, model, acc, optimizer="adam", dataset=ds))
    t = aggregate(runs, rows="model.name", cols=("dataset.name", "averaging.variant"), bold="row")
    assert t.best() == {(("gcn",), ("cora", "swa")), (("gcn",), ("citeseer", "none")), (("gat",), ("cora", "swa"))}
    assert t.labels["none"] == "Adam"  # the backbone optimizer names the "none" column
    md = t.to_markdown()
    assert "Cora / Adam" in md and "Citeseer / SWA" in md
    assert "81.30" in md and "±" not in md.split("\n\n")[0]  # single runs: no ±
    html = t.to_html()
    assert '<th colspan="2">Cora</th>' in html  # two-level header


def test_single_row_table3_layout_and_unequal_n_is_shown(runs):
    t = aggregate([r for r in runs if r["params"]["model.name"] == "vgg16"][:-1], rows=None,
                  cols="averaging.variant", bold="row")
    assert t.rows == [()] and t.cols == [("none",), ("swa",), ("dswa",)]
    assert t.best() == {((), ("dswa",))}
    assert t.cell((), ("dswa",)).n == 2
    md = t.to_markdown()
    assert "(n=2)" in md and "(n=3)" in md and "n per cell shown" in md


def test_csv_round_trip(runs):
    runs[0]["metrics"].pop("final/backbone_test_acc")  # a run without the metric is skipped
    t = aggregate(runs, labels={"vgg16": "VGG-16"})
    assert t.skipped == ["r000"] and "skipped" in t.footer()
    back = Table.from_csv(t.to_csv(), none_metric="final/backbone_test_acc")
    assert back.rows == t.rows and back.cols == t.cols and back.row_keys == t.row_keys
    for key, cell in t.cells.items():
        b = back.cells[key]
        assert b.values == cell.values and b.run_ids == cell.run_ids and b.metric == cell.metric
        assert b.mean == cell.mean and (b.std == cell.std or (math.isnan(b.std) and math.isnan(cell.std)))
    assert back.best() == t.best()
    assert back.to_markdown().split("\n\n")[0] == t.to_markdown().split("\n\n")[0]


def test_missing_metric_everywhere_is_an_error(runs):
    with pytest.raises(AnalysisError, match="no run has the metric"):
        aggregate(runs, metric="final/nope", none_metric=None)


def test_children_of_a_parent_are_fetched_across_pages(mlflow_uri):
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment("study")
    parent = client.create_run(exp).info.run_id
    other = client.create_run(exp).info.run_id
    for i in range(5):
        run_id = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
        variant = "swa" if i % 2 else "none"
        key = "final/average_test_acc" if variant == "swa" else "final/backbone_test_acc"
        client.log_batch(run_id, metrics=[Metric(key, 60.0 + i, 0, 8)],
                         params=[Param("averaging.variant", variant), Param("model.name", "toy_cnn"),
                                 Param("seed", str(i))])
        client.set_terminated(run_id, "FAILED" if i == 4 else "FINISHED")
    client.create_run(exp, tags={"mlflow.parentRunId": other})
    runs = fetch_runs(parent, uri=mlflow_uri, page_size=2)
    assert sorted(r["params"]["seed"] for r in runs) == ["0", "1", "2", "3"]  # the FAILED child is left out
    assert len(fetch_runs(parent, uri=mlflow_uri, status=None, page_size=2)) == 5
    t = table_for_parent(parent, uri=mlflow_uri)
    assert t.cell(("none",), ("toy_cnn",)).values == [60.0, 62.0]
    assert t.cell(("swa",), ("toy_cnn",)).mean == pytest.approx(62.0)
    with pytest.raises(AnalysisError, match="not found"):
        fetch_runs("0" * 32, uri=mlflow_uri)


def test_metrics_as_columns_table1_from_one_set_of_runs():
    """Adam vs SWA from the same SWA runs: the backbone's and the average's accuracy side by side."""
    runs = [record(i, "swa", model, acc, optimizer="adam", dataset=ds)
            for i, (ds, model, acc) in enumerate([("cora", "gcn", 81.3), ("cora", "gcn", 81.5),
                                                  ("pubmed", "gcn", 79.6), ("cora", "gat", 81.7)])]
    t = aggregate(runs, rows="model.name", cols="dataset.name", bold="row",
                  metric={"Adam": "final/backbone_test_acc", "SWA": "final/average_test_acc"})
    assert t.col_keys == ("dataset.name", "metric")
    assert t.cols == [("cora", "Adam"), ("cora", "SWA"), ("pubmed", "Adam"), ("pubmed", "SWA")]
    assert t.cell(("gcn",), ("cora", "Adam")).values == [71.3, 71.5]  # backbone = acc - 10 in the fixture
    assert t.cell(("gcn",), ("cora", "SWA")).mean == pytest.approx(81.4)
    assert t.best() == {(("gcn",), ("cora", "SWA")), (("gcn",), ("pubmed", "SWA")), (("gat",), ("cora", "SWA"))}
    assert "| model.name | Cora / Adam | Cora / SWA | Pubmed / Adam | Pubmed / SWA |" in t.to_markdown()
    back = Table.from_csv(t.to_csv(), bold="row")  # the bold rule is a display choice, not in the CSV
    assert back.cols == t.cols and back.best() == t.best()


def test_package_names_are_the_functions_even_after_their_modules_are_imported():
    import importlib

    import workbench.analysis as analysis

    for name, mod in analysis._EXPORTS.items():
        importlib.import_module(f"workbench.analysis.{mod}")
        assert not isinstance(getattr(analysis, name), type(analysis)), name
    from workbench.analysis import aggregate

    assert callable(aggregate)
