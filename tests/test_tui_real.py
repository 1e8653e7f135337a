"""End to end with the real launcher and a real MLflow store: fill the form (quickstart,
smoke scale), launch, watch the run finish in Runs, then compare it in Compare beside a
two-seed SWA study (logged here with the engine's own tracker) and read the diff and the
mean ± std table. And: a run left RUNNING by an earlier session shows at start-up."""
from __future__ import annotations

import asyncio
import time

import pytest

from workbench.tui.app import build_app
from workbench.testing import FakeLauncher, sample_curves
from workbench.tracking.store import MlflowStore
from workbench.tui.widgets.item_table import ItemTable
from workbench.tui.widgets.param_diff import ParamDiff
from workbench.tui.widgets.run_table import RunTable
from workbench.tui.widgets.spec_form import SpecForm
from workbench.tui.widgets.stats_table import StatsTable


def log_run(uri: str, variant: str, seed: int, parent: str | None = None, finish: bool = True,
            upto: int | None = None) -> str:
    """A run written through the engine's MlflowTracker (params, spec.toml, per-epoch batches)."""
    from workbench.presets import load_spec
    from workbench.tracking.mlflow_sink import MlflowTracker

    spec = load_spec("quickstart", scale="smoke", overrides=[f"averaging.variant={variant}", f"seed={seed}",
                                                              f"tracking.uri={uri}"])
    tr = MlflowTracker(spec.tracking)
    tags = {"variant": variant, "model": "toy_cnn", "dataset": "digits", "preset": "quickstart"}
    if parent:
        tags.update({"study.name": "quickstart", "study.seed": str(seed)})
    run_id = tr.start(spec, tags, parent)
    curves = sample_curves(variant, seed, upto=upto)
    for e in curves["backbone/test_acc"][0]:
        tr.log_metrics({k: v[1][v[0].index(e)] for k, v in curves.items() if e in v[0]}, e)
    if finish:
        tr.log_metrics({"final/backbone_test_acc": curves["backbone/test_acc"][1][-1],
                        "final/average_test_acc": curves["average/test_acc"][1][-1]}, 8)
        tr.finish()
    return run_id


def study(uri: str) -> str:
    from workbench.tracking.mlflow_sink import client_for, ensure_experiment

    client, _ = client_for(uri)
    exp = ensure_experiment(client, uri, "workbench")
    parent = client.create_run(exp, run_name="study-quickstart",
                               tags={"study.name": "quickstart", "study.kind": "parent"}).info.run_id
    for seed in (0, 1):
        log_run(uri, "swa", seed, parent)
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.mark.timeout(420)
def test_real_smoke_run_from_the_form_to_compare(mlflow_uri, tmp_path, monkeypatch):
    from workbench.launch.local import LocalLauncher

    monkeypatch.chdir(tmp_path)

    async def body():
        launcher = LocalLauncher(workers=1, gpus=[])
        app = build_app(launcher, MlflowStore(mlflow_uri), preset="quickstart", scale="smoke")
        async with app.run_test(size=(100, 30)) as pilot:
            await app.workers.wait_for_complete()
            while not app.pane("launch").loaded:
                await pilot.pause()
            form = app.screen.query_one(SpecForm)
            form.set_input("budget.epochs", "4")  # windows 2-4, one restart-free PSWA window
            form.set_input("dataset.subset", "400")
            form.set_input("device", "cpu")
            await pilot.pause()
            assert str(app.screen.query_one("#launch-status").render()).startswith("✓ 1 run, 4 epochs on cpu")
            await pilot.press("ctrl+r")
            await pilot.press("f3")
            deadline = time.time() + 360
            seen_running = False
            while time.time() < deadline:
                await pilot.pause(0.5)
                rows = list(app.board.rows.values())
                seen_running |= bool(rows) and rows[0].status == "RUNNING" and rows[0].epoch >= 1
                if rows and not rows[0].active:
                    break
            (row,) = app.board.rows.values()
            assert row.status == "FINISHED", row.error
            assert seen_running and row.epoch == 4 and row.average_acc is not None
            table = app.screen.query_one(RunTable)
            assert [str(c) for c in table.get_row(row.key)][:4] == ["FINISHED", row.key, "████████", "4/4"]

            parent = study(mlflow_uri)
            await pilot.press("f4")
            await app.workers.wait_for_complete()
            await pilot.pause()
            items = app.screen.query_one(ItemTable)
            assert items.row_count == 2
            for rid in (row.run_id, parent):
                items.move_cursor(row=items.get_row_index(rid))
                await pilot.press("space")
            await app.workers.wait_for_complete()
            await pilot.pause()
            pd = app.screen.query_one(ParamDiff)
            diff = {str(r[0]): [str(c) for c in r[1:]] for r in (pd.get_row_at(i) for i in range(pd.row_count))}
            assert diff["averaging.variant"] == ["pswa", "swa"]
            assert diff["budget.epochs"] == ["4", "8"] and "model.name" not in diff
            stats = app.screen.query_one(StatsTable)
            got = {str(stats.get_row_at(i)[0]): [str(c) for c in stats.get_row_at(i)] for i in range(stats.row_count)}
            # rows: the configurations, keyed by the fields that tell them apart
            assert str(stats.ordered_columns[0].label) == "averaging.variant / budget.epochs / dataset.subset / device"
            assert set(got) == {"SWA / 8 / 0 / auto", "PSWA / 4 / 400 / cpu"}
            swa, pswa = got["SWA / 8 / 0 / auto"], got["PSWA / 4 / 400 / cpu"]
            assert swa[1] == "2" and " ± " in swa[3]  # two seeds: mean ± std
            assert pswa[1] == "1" and float(pswa[3]) == pytest.approx(row.average_acc, abs=0.01)
        launcher.shutdown()

    asyncio.run(body())


def test_a_run_left_running_shows_when_the_app_reopens(mlflow_uri):
    run_id = log_run(mlflow_uri, "pswa", 3, finish=False, upto=5)

    async def body():
        app = build_app(FakeLauncher(), MlflowStore(mlflow_uri), start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)  # the store is first read 0.1 s after the first frame
            await app.workers.wait_for_complete()
            await pilot.pause()
            table = app.screen.query_one(RunTable)
            status, name, _, epoch, sgd, avg, _ = [str(c) for c in table.get_row(f"store:{run_id}")]
            assert (status, epoch) == ("RUNNING*", "5/8") and name.startswith("quickstart-pswa")
            assert float(sgd) == sample_curves("pswa", 3)["backbone/test_acc"][1][4]

    asyncio.run(body())
