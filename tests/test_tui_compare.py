"""Compare screen over an in-memory store: filters, picks, the analysis' mean ± std table,
the diff of differing fields only, overlaid curves, MLflow deep links, run details."""
from __future__ import annotations

import asyncio

import numpy as np

from workbench.tui.app import build_app
from workbench.testing import FakeLauncher, sample_store
from workbench.tui.screens.detail import RunDetailScreen
from workbench.tui.screens.link import LinkScreen
from workbench.tui.widgets.item_table import ItemTable
from workbench.tui.widgets.line_chart import LineChart
from workbench.tui.widgets.param_diff import ParamDiff
from workbench.tui.widgets.run_filters import RunFilters
from workbench.tui.widgets.stats_table import StatsTable

STUDY, SGD, FAILED = "a" * 32, "b" * 32, "d" * 32


def run(coro):
    return asyncio.run(coro)


async def settle(app, pilot, n: int = 2):
    await pilot.pause(0.2)  # the store is first read 0.1 s after the first frame
    await app.workers.wait_for_complete()
    for _ in range(n):
        await pilot.pause()


def rows(table) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def pick(app, pilot, *run_ids):
    items = app.screen.query_one(ItemTable)
    for rid in run_ids:
        items.move_cursor(row=items.get_row_index(rid))
        await pilot.press("space")
    await settle(app, pilot)


def test_filters_narrow_the_list():
    async def body():
        app = build_app(FakeLauncher(), sample_store(), start="compare")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            items = app.screen.query_one(ItemTable)
            assert items.row_count == 4  # the study, the SGD run, the failed run, the running one
            app.screen.query_one("#filter-variant").value = "none"
            await settle(app, pilot)
            assert [r[1] for r in rows(items)] == ["quickstart-none-toy_cnn-digits-s0"]
            app.screen.query_one("#filter-variant").clear()
            app.screen.query_one("#filter-status").value = "FAILED"
            await settle(app, pilot)
            assert [r[2] for r in rows(items)] == ["FAILED"]
            assert app.screen.query_one(RunFilters).filters["status"] == "FAILED"

    run(body())


def test_picking_a_study_and_a_run_shows_stats_diff_and_curves():
    from workbench.analysis.tables import aggregate

    async def body():
        store = sample_store()
        app = build_app(FakeLauncher(), store, start="compare")
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(app, pilot)
            await pick(app, pilot, STUDY, SGD)
            stats = rows(app.screen.query_one(StatsTable))
            assert [r[0] for r in stats] == ["SGD", "SWA", "PSWA"]  # the analysis' (paper's) order
            assert [r[1] for r in stats] == ["1", "3", "3"]
            # the numbers are the analysis' (mean ± sample std over the study's seeds)
            children = [r for r in store.records if r.get("parent_run_id") == STUDY]
            want = aggregate(children, rows="averaging.variant", cols=None, metric="final/average_test_acc",
                             none_metric=None).cell(("swa",), ())
            assert stats[1][3] == f"{want.mean:.2f} ± {want.std:.2f}"
            vals = [r["metrics"]["final/average_test_acc"] for r in children if r["params"]["averaging.variant"] == "swa"]
            assert np.isclose(want.std, np.std(vals, ddof=1))
            assert stats[0][3] == "–"  # SGD has no average
            diff = rows(app.screen.query_one(ParamDiff))
            # only what differs (no model.name, dataset.name, ...); a study's varying fields as sets
            assert diff == [["averaging.variant", "{swa, pswa}", "none"], ["seed", "{0, 1, 2}", "0"]]
            chart = app.screen.query_one("#compare-chart", LineChart).data
            assert [s.label for s in chart.series] == ["SWA avg", "PSWA avg", "SGD backbone"]

    run(body())


def test_link_key_shows_deep_links_without_a_browser(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("WORKBENCH_UI_URL", raising=False)

    async def body():
        app = build_app(FakeLauncher(), sample_store(), start="compare")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            items = app.screen.query_one(ItemTable)
            items.move_cursor(row=items.get_row_index(SGD))
            await pilot.press("l")
            await settle(app, pilot)
            assert isinstance(app.screen, LinkScreen) and not app.screen.opened
            assert app.screen.url == f"http://127.0.0.1:5000/#/experiments/1/runs/{SGD}"
            await pilot.press("escape")
            await pick(app, pilot, SGD, FAILED)
            await pilot.press("l")
            await settle(app, pilot)
            assert app.screen.url == (f'http://127.0.0.1:5000/#/compare-runs?runs=["{SGD}","{FAILED}"]'
                                      '&experiments=["1"]')

    run(body())


def test_details_of_a_failed_store_run_show_spec_artifacts_and_traceback():
    async def body():
        app = build_app(FakeLauncher(), sample_store(), start="compare")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            items = app.screen.query_one(ItemTable)
            items.focus()
            items.move_cursor(row=items.get_row_index(FAILED))
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, RunDetailScreen)
            assert app.screen.query_one("#detail-tabs").active == "tab-error"
            err = str(app.screen.query_one("#detail-error").render())
            assert "CUDA out of memory" in err and "Traceback" in err
            assert "seed = 7" in str(app.screen.query_one("#detail-spec").render())
            assert str(app.screen.query_one("#detail-artifacts").render()).split() == ["error.txt", "spec.toml"]
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen.query_one(ItemTable)  # back on Compare

    run(body())
