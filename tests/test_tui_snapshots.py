"""Snapshots of every screen at 80 x 24 with deterministic fake data.

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and review the SVGs under ``tests/__snapshots__/test_tui_snapshots/``.
"""
from __future__ import annotations

import pytest
from textual.widgets import TabbedContent

from workbench.tui.app import build_app
from workbench.testing import FakeLauncher, MemoryStore, sample_curves, sample_store
from workbench.tui.widgets.item_table import ItemTable
from workbench.tui.widgets.run_table import RunTable

SIZE = (80, 24)
STUDY, SGD = "a" * 32, "b" * 32


@pytest.fixture(autouse=True)
def _no_browser(monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "WORKBENCH_UI_URL"):
        monkeypatch.delenv(var, raising=False)


async def settle(pilot, n: int = 3) -> None:
    app = pilot.app
    await pilot.pause(0.2)  # the store is first read 0.1 s after the first frame
    await app.workers.wait_for_complete()
    for _ in range(n):
        await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


async def form_ready(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    while not pilot.app.pane("launch").loaded:
        await pilot.pause()
    await settle(pilot)


def epochs(variant: str, seed: int, upto: int) -> list[dict]:
    c = sample_curves(variant, seed)
    return [{k: v[1][v[0].index(e)] for k, v in c.items() if e in v[0]} for e in range(1, upto + 1)]


def session(launcher: FakeLauncher) -> None:
    """Four runs of this session: finished, running, failed, queued."""
    from workbench.presets import load_spec

    def spec(variant: str, seed: int):
        return load_spec("quickstart", scale="smoke", overrides={"averaging.variant": variant, "seed": seed})

    done = launcher.submit(spec("pswa", 0), key="quickstart-pswa-s0 #1")
    launcher.play(done, epochs("pswa", 0, 8), final={"final/backbone_test_acc": 94.1, "final/average_test_acc": 95.3})
    live = launcher.submit(spec("swa", 1), key="quickstart-swa-s1 #2")
    launcher.start(live, run_id="f" * 32)
    for i, m in enumerate(epochs("swa", 1, 5)):
        launcher.epoch(live, m, eta_s=12.0 * (8 - i - 1))
    bad = launcher.submit(spec("ema", 0), key="quickstart-ema-s0 #3")
    launcher.play(bad, epochs("none", 0, 2), error="RuntimeError: loss is nan at epoch 3")
    launcher.submit(spec("none", 0), key="quickstart-none-s0 #4")


def runs_app():
    launcher = FakeLauncher()
    return build_app(launcher, sample_store(), start="runs"), launcher


def test_launch(snap_compare):
    app = build_app(FakeLauncher(), MemoryStore(), preset="quickstart", scale="smoke")
    assert snap_compare(app, terminal_size=SIZE, run_before=form_ready)


def test_launch_invalid_field(snap_compare):
    async def before(pilot):
        await form_ready(pilot)
        form = pilot.app.screen.query_one("#form")
        form.set_input("budget.epochs", "3")  # averaging.start 5 lies beyond the end of the run
        form.set_input("averaging.start", "5")
        await settle(pilot)
        form.go_to_first_error()  # what ctrl+r does when launch is blocked
        await settle(pilot)

    app = build_app(FakeLauncher(), MemoryStore(), preset="quickstart", scale="smoke")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_runs(snap_compare):
    app, launcher = runs_app()

    async def before(pilot):
        await settle(pilot)  # the store's RUNNING run arrives first
        session(launcher)
        await settle(pilot)
        table = pilot.app.screen.query_one(RunTable)
        table.move_cursor(row=table.get_row_index("quickstart-swa-s1 #2"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_run_detail_failed(snap_compare):
    app, launcher = runs_app()

    async def before(pilot):
        await settle(pilot)
        session(launcher)
        await settle(pilot)
        table = pilot.app.screen.query_one(RunTable)
        table.move_cursor(row=table.get_row_index("quickstart-ema-s0 #3"))
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_run_detail_curves(snap_compare):
    async def before(pilot):
        await settle(pilot)
        table = pilot.app.screen.query_one(ItemTable)
        table.move_cursor(row=table.get_row_index(SGD))
        await pilot.press("enter")
        await settle(pilot)

    app = build_app(FakeLauncher(), sample_store(), start="compare")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def compare_before(tab: str):
    async def before(pilot):
        await settle(pilot)
        table = pilot.app.screen.query_one(ItemTable)
        for rid in (STUDY, SGD):
            table.move_cursor(row=table.get_row_index(rid))
            await pilot.press("space")
        await settle(pilot)
        pilot.app.screen.query_one(TabbedContent).active = tab
        await settle(pilot)

    return before


@pytest.mark.parametrize("tab", ["tab-stats", "tab-diff", "tab-curves"])
def test_compare(snap_compare, tab):
    app = build_app(FakeLauncher(), sample_store(), start="compare")
    assert snap_compare(app, terminal_size=SIZE, run_before=compare_before(tab))


def test_compare_link(snap_compare):
    async def before(pilot):
        await compare_before("tab-stats")(pilot)
        await pilot.press("l")
        await settle(pilot)

    app = build_app(FakeLauncher(), sample_store(), start="compare")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_help(snap_compare):
    app = build_app(FakeLauncher(), MemoryStore(), start="runs")
    assert snap_compare(app, terminal_size=SIZE, press=["f1"])


def test_quit_question(snap_compare):
    app, launcher = runs_app()

    async def before(pilot):
        await settle(pilot)
        session(launcher)
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
