"""`workbench study` -> `workbench report` -> `workbench analyze`, as the README shows them."""
import subprocess
import sys

from mlflow.tracking import MlflowClient

from workbench.cli import default_layout, main


def test_study_then_report_then_analyze(tmp_path, mlflow_uri, capsys):
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "quickstart", "--seeds", "2",
                          "--scale", "smoke", "--workers", "2"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    parent = out.stdout.split("study parent run id: ")[1].split()[0]
    assert main(["report", parent, "--out", str(tmp_path / "rep")]) == 0
    table = capsys.readouterr().out
    assert "| PSWA |" in table.replace("**", "") and "±" in table and "n = 2" in table
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"table.md", "table.html", "table.csv", "curves.png"}
    client = MlflowClient(mlflow_uri)
    assert {a.path for a in client.list_artifacts(parent, "report")} >= {"report/table.md", "report/curves.png"}
    kids = [r.info.run_id for r in client.search_runs([client.get_run(parent).info.experiment_id],
                                                     f"tags.mlflow.parentRunId = '{parent}'")]
    assert main(["analyze", "line", kids[0], kids[1], "--points", "3", "--train-batches", "2"]) == 0
    line = capsys.readouterr().out
    assert "-0.50" in line and "1.50" in line
    assert main(["analyze", "flatness", kids[0], "--iters", "5", "--directions", "2", "--rho", "0.05"]) == 0
    assert "top Hessian eigenvalue" in capsys.readouterr().out
    assert main(["analyze", "samples", kids[0], "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_report_of_an_unknown_run_exits_2(mlflow_uri, capsys):
    assert main(["report", "deadbeef"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deadbeef" in err[0]


def test_default_layout_follows_the_grid():
    assert default_layout({"study.grid": '{"averaging.variant": [], "model.name": []}'}) == (
        ("averaging.variant",), ("model.name",))
    assert default_layout({"study.grid": '{"dataset.name": [], "model.name": []}'}) == (
        ("dataset.name",), ("model.name",))
    assert default_layout({}) == (("averaging.variant",), ("model.name",))
