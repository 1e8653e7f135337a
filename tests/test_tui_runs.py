"""Runs screen and leaving the app: live progress from launcher events, a failing run's
error, cancel, the quit question, and runs still RUNNING in the store at start-up."""
from __future__ import annotations

import asyncio

from workbench.tui.app import build_app
from workbench.testing import FakeLauncher, MemoryStore, sample_curves, sample_store
from workbench.tui.screens.confirm_quit import ConfirmQuitScreen
from workbench.tui.screens.detail import RunDetailScreen
from workbench.tui.widgets.line_chart import LineChart
from workbench.tui.widgets.run_table import RunTable


def run(coro):
    return asyncio.run(coro)


def spec(**over):
    from workbench.presets import load_spec

    return load_spec("quickstart", scale="smoke", overrides=over or None)


def cells(app, key) -> list[str]:
    table = app.screen.query_one(RunTable)
    return [str(c) for c in table.get_row(key)]


async def settle(app, pilot, n: int = 2):
    await pilot.pause(0.2)  # the store is first read 0.1 s after the first frame
    await app.workers.wait_for_complete()
    for _ in range(n):
        await pilot.pause()


def test_runs_screen_shows_progress_live_and_the_finish():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            assert app.current_pane == "runs"
            h = launcher.submit(spec(), key="q1")
            launcher.start(h)
            curves = sample_curves("pswa", 0)
            for e in range(3):
                m = {k: v[1][v[0].index(e + 1)] for k, v in curves.items() if e + 1 in v[0]}
                launcher.epoch(h, m, eta_s=30.0 - 10 * e)
            await settle(app, pilot)
            status, name, bar, epoch, sgd, avg, eta = cells(app, "q1")
            assert (status, name, epoch, eta) == ("RUNNING", "q1", "3/8", "10s")
            assert bar.startswith("███") and float(sgd) == curves["backbone/test_acc"][1][2]
            assert float(avg) == curves["average/test_acc"][1][0]  # the average exists from epoch 3
            chart = app.screen.query_one("#ta-chart", LineChart).data
            assert [s.label for s in chart.series] == ["backbone", "average"]
            assert list(chart.series[0].xs) == [1, 2, 3]
            launcher.finish(h, {"final/backbone_test_acc": 95.0, "final/average_test_acc": 96.5})
            await settle(app, pilot)
            assert cells(app, "q1")[0] == "FINISHED"
            assert any("q1 finished" in n.message for n in app._notifications)

    run(body())


def test_the_initial_evaluation_is_the_charts_step_0_and_no_epoch_of_progress():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            h = launcher.submit(spec(), key="from0")
            launcher.start(h)
            launcher.initial(h, {"backbone/test_acc": 12.5, "backbone/test_loss": 2.25})
            await settle(app, pilot)
            assert cells(app, "from0")[3] == "0/8" and float(cells(app, "from0")[4]) == 12.5
            launcher.epoch(h, {"backbone/test_acc": 80.0, "backbone/train_loss": 0.9})
            await settle(app, pilot)
            chart = app.screen.query_one("#ta-chart", LineChart).data
            assert [(list(s.xs), list(s.ys)) for s in chart.series] == [([0, 1], [12.5, 80.0])]
            assert cells(app, "from0")[3] == "1/8"
            await pilot.press("enter")
            await settle(app, pilot)
            detail = app.screen.query_one("#detail-chart", LineChart).data
            assert [list(s.xs) for s in detail.series] == [[0, 1]]

    run(body())


def test_a_failing_run_shows_its_error_and_the_app_keeps_working():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            bad = launcher.submit(spec(), key="bad")
            launcher.play(bad, [{"backbone/test_acc": 50.0}], error="RuntimeError: loss is nan at epoch 2")
            await settle(app, pilot)
            assert cells(app, "bad")[0] == "FAILED"
            assert "loss is nan" in str(app.screen.query_one("#run-summary").render())
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, RunDetailScreen)
            assert app.screen.query_one("#detail-tabs").active == "tab-error"
            assert "RuntimeError: loss is nan at epoch 2" in str(app.screen.query_one("#detail-error").render())
            await pilot.press("escape")
            await pilot.press("f2")
            while not app.pane("launch").loaded:
                await settle(app, pilot)
            await pilot.press("ctrl+r")  # launching still works
            await settle(app, pilot)
            assert len(launcher.handles) == 2

    run(body())


def test_cancel_key_cancels_the_highlighted_run():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            h = launcher.submit(spec(), key="long")
            launcher.start(h)
            await settle(app, pilot)
            await pilot.press("c")
            await settle(app, pilot)
            assert launcher.cancelled == ["long"] and cells(app, "long")[0] == "KILLED"

    run(body())


def test_leaving_with_active_runs_asks_stop_or_leave():
    async def body(choice: str):
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            h = launcher.submit(spec(), key="r1")
            launcher.start(h)
            await settle(app, pilot)
            await pilot.press("ctrl+q")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmQuitScreen)
            await pilot.press("escape")  # stay
            await settle(app, pilot)
            assert app.is_running and not launcher.shutdowns
            await pilot.press("ctrl+q")
            await settle(app, pilot)
            await pilot.press(choice)
            await settle(app, pilot)
        return launcher

    assert run(body("l")).shutdowns == [False]  # leave them running
    stopped = run(body("s"))
    assert stopped.shutdowns == [True] and stopped.handles[0].status == "KILLED"


def test_no_question_when_nothing_is_active():
    async def body():
        app = build_app(FakeLauncher(), MemoryStore(), preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert not app.is_running

    run(body())


def test_runs_still_running_in_the_store_show_at_start():
    async def body():
        store = sample_store()
        app = build_app(FakeLauncher(), store, preset="quickstart", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            key = "store:" + "e" * 32
            status, name, _, epoch, *_ = cells(app, key)
            assert status == "RUNNING*" and name == "quickstart-pswa-toy_cnn-digits-s3" and epoch == "5/8"
            # its curves are the store's history as it comes: the chart plots them unconverted
            assert app.board.get(key).curves == store.history("e" * 32, ("backbone/test_acc", "average/test_acc"))
            chart = app.screen.query_one("#ta-chart", LineChart).data
            assert [(list(s.xs), list(s.ys)) for s in chart.series] == [
                store.histories["e" * 32][m] for m in ("backbone/test_acc", "average/test_acc")]
            # the run ends elsewhere: the next poll shows it
            store.records[-1]["status"] = "FINISHED"
            app._find_store_runs([store.records[-1]["run_id"]])
            await settle(app, pilot)
            assert cells(app, key)[0] == "FINISHED*"

    run(body())


async def pause(pilot, n: int = 4) -> None:
    """settle() without waiting for the workers: a study's worker waits for its runs."""
    for _ in range(n):
        await pilot.pause(0.02)


async def launch_study(app, pilot, launcher, seeds: int, total: int) -> None:
    """ctrl+r on the Launch pane with ``seeds`` seeds; waits for the study's runs."""
    await pilot.press("f2")
    while app.pane("launch") is None or not app.pane("launch").loaded:
        await pause(pilot)
    app.pane("launch").form.set_input("launch.seeds", str(seeds))
    await pilot.pause()
    await pilot.press("ctrl+r")
    for _ in range(200):
        await pilot.pause(0.05)
        if len(launcher.handles) == total:
            return
    raise AssertionError(f"{total - len(launcher.handles)} run(s) never submitted")


async def pick(app, pilot, key: str) -> None:
    table = app.screen.query_one(RunTable)
    table.move_cursor(row=table.get_row_index(key))
    await pause(pilot)


def test_a_study_launched_twice_keeps_both_studies_rows_and_cancels_each_its_own(mlflow_uri):
    """The launcher gives the second study's children the first one's keys (``quickstart
    seed=0``): the board keys rows per launch, so both studies show and cancel apart. A
    study whose runs were all cancelled one by one ends KILLED, not FAILED."""
    from mlflow.tracking import MlflowClient

    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(uri=mlflow_uri), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            await launch_study(app, pilot, launcher, 2, 2)
            await launch_study(app, pilot, launcher, 2, 4)
            assert len({h.key for h in launcher.handles}) == 2
            await pilot.press("f3")
            await pause(pilot)
            keys = ["quickstart seed=0", "quickstart seed=1", "quickstart seed=0 (2)", "quickstart seed=1 (2)"]
            assert list(app.board.rows) == keys
            assert [cells(app, k)[1] for k in keys] == keys
            first, second = launcher.handles[:2], launcher.handles[2:]
            for key in keys[:2]:
                await pick(app, pilot, key)
                await pilot.press("c")
                await pause(pilot)
            assert [h.status for h in launcher.handles] == ["KILLED", "KILLED", "QUEUED", "QUEUED"]
            assert [cells(app, k)[0] for k in keys] == ["KILLED", "KILLED", "QUEUED", "QUEUED"]
            for _ in range(100):
                await pilot.pause(0.05)
                if MlflowClient(mlflow_uri).get_run(first[0].parent_run_id).info.status != "RUNNING":
                    break
            assert MlflowClient(mlflow_uri).get_run(first[0].parent_run_id).info.status == "KILLED"
            assert second[0].parent_run_id != first[0].parent_run_id
            for h in second:
                launcher.finish(h)
            for _ in range(100):  # the study's own thread marks its parent
                await pilot.pause(0.05)
                if MlflowClient(mlflow_uri).get_run(second[0].parent_run_id).info.status != "RUNNING":
                    break
            assert MlflowClient(mlflow_uri).get_run(second[0].parent_run_id).info.status == "FINISHED"

    run(body())


def test_cancel_study_key_stops_every_run_of_the_highlighted_runs_study(mlflow_uri):
    from mlflow.tracking import MlflowClient

    from workbench.tui.screens.help import KEYS
    from workbench.tui.panes.runs import RunsPane

    # in the key bar, and in the help page
    assert any(b.key == "C" and b.description == "Cancel study" and b.show for b in RunsPane.BINDINGS)
    assert ("C", "cancel the run's whole study (every queued and running run)") in dict(KEYS)["Runs"]

    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(uri=mlflow_uri), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            single = launcher.submit(spec(), key="single")
            await launch_study(app, pilot, launcher, 3, 4)
            kids = launcher.handles[1:]
            launcher.start(kids[0])
            launcher.epoch(kids[0], {"backbone/test_acc": 80.0})
            launcher.play(kids[1], [{"backbone/test_acc": 90.0}])  # ended before the cancel: stays FINISHED
            await pilot.press("f3")
            await pause(pilot)
            await pick(app, pilot, "single")
            await pilot.press("C")  # a single run has no study: nothing happens
            await pause(pilot)
            assert single.status == "QUEUED" and all(k.status != "KILLED" for k in kids)
            assert any("not part of a study" in n.message for n in app._notifications)
            await pick(app, pilot, "quickstart seed=2")
            await pilot.press("C")
            await app.workers.wait_for_complete()
            await pause(pilot)
            assert [h.status for h in kids] == ["KILLED", "FINISHED", "KILLED"] and single.status == "QUEUED"
            assert [cells(app, k)[0] for k in ("quickstart seed=0", "quickstart seed=1", "quickstart seed=2")] == [
                "KILLED", "FINISHED", "KILLED"]
            parent = MlflowClient(mlflow_uri).get_run(kids[0].parent_run_id)
            assert parent.info.status == "KILLED"
            assert parent.data.tags["error"] == "study cancelled from the terminal app"
            messages = [n.message for n in app._notifications]
            assert any(m.startswith("Cancelling study quickstart") for m in messages)
            assert any("KILLED (cancelled from the terminal app)" in m for m in messages), messages
            launcher.cancel(single)

    run(body())
