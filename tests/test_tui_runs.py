"""Runs screen and leaving the app: live progress from launcher events, a failing run's
error, cancel, the quit question, and runs still RUNNING in the store at start-up."""
from __future__ import annotations

import asyncio

from workbench.tui.app import build_app
from workbench.tui.fakes import FakeLauncher, MemoryStore, sample_curves, sample_store
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
            # the run ends elsewhere: the next poll shows it
            store.records[-1]["status"] = "FINISHED"
            app._find_store_runs([store.records[-1]["run_id"]])
            await settle(app, pilot)
            assert cells(app, key)[0] == "FINISHED*"

    run(body())
