"""Launch screen: the generated form, validation at the field, the LR preview, launching
runs and studies through an injected fake launcher."""
from __future__ import annotations

import asyncio

from workbench.tui.app import build_app
from workbench.testing import FakeLauncher, MemoryStore
from workbench.tui.widgets.lr_preview import LRPreview
from workbench.tui.widgets.spec_form import SpecForm


def run(coro):
    return asyncio.run(coro)


async def ready(app, pilot):
    """Wait for the schema worker and the form it builds."""
    await app.workers.wait_for_complete()
    for _ in range(50):
        await pilot.pause()
        if app.pane("launch").loaded:
            return app.screen.query_one(SpecForm)
    raise AssertionError("the form never loaded")


def set_field(form: SpecForm, path: str, value) -> None:
    form.set_input(path, value)  # what the field editor posts


def status(app) -> str:
    return str(app.screen.query_one("#launch-status").render())


def test_form_is_generated_from_the_schema_and_follows_the_variant():
    from workbench.spec import form_fields

    async def body():
        app = build_app(FakeLauncher(), MemoryStore(), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            assert {f["path"] for f in form_fields()} - {"preset"} == set(form.fields) - {
                "launch.preset", "launch.scale", "launch.seeds"}
            assert (form.values["launch.preset"], form.values["launch.scale"]) == ("quickstart", "smoke")
            assert form.text("budget.epochs") == "8" and form.values["averaging.variant"] == "pswa"
            assert form.visible("averaging.period") and not form.visible("averaging.decay")
            assert "averaging.period" in form.rows and "averaging.decay" not in form.rows
            set_field(form, "averaging.variant", "ema")
            await pilot.pause()
            assert form.visible("averaging.decay") and "averaging.decay" in form.rows
            assert "averaging.period" not in form.rows
            assert status(app).startswith("✓ 1 run, 8 epochs")
            set_field(form, "launch.preset", "digits-swa")  # the preset picker: every field follows
            await pilot.pause()
            # the scale stays when the new preset has it
            assert (form.values["averaging.variant"], form.values["averaging.start"]) == ("swa", 4)
            assert form.values["launch.scale"] == "smoke" and status(app).startswith("✓ 1 run, 8 epochs")
            set_field(form, "launch.seeds", "0")
            await pilot.pause()
            assert "launch.seeds" in form.errors and "launch blocked" in status(app)

    run(body())


def test_invalid_field_shows_the_validator_message_and_blocks_launch():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            set_field(form, "averaging.start", "99")
            await pilot.pause()
            err = form.errors["averaging.start"]
            assert err.startswith("averaging.start:") and "before the end of the run" in err
            assert str(form.get_row("averaging.start!")[1]) == err  # shown in the row under the field
            assert str(form.get_row("averaging.start")[0]).startswith("✗")
            assert "launch blocked" in status(app)
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert launcher.handles == []

            set_field(form, "averaging.start", "2")
            set_field(form, "dataset.subset", "abc")
            await pilot.pause()
            assert "averaging.start" not in form.errors and "averaging.start!" not in form.rows
            assert form.errors["dataset.subset"] == "dataset.subset: expected an integer, got 'abc'"
            await pilot.press("ctrl+r")
            assert launcher.handles == []

            set_field(form, "dataset.subset", "300")
            await pilot.pause()
            assert status(app).startswith("✓")
            await pilot.press("ctrl+r")
            await pilot.pause()
            (h,) = launcher.handles
            assert h.spec.dataset.subset == 300 and h.spec.averaging.variant == "pswa" and h.spec.preset == "quickstart"
            assert h.spec.tracking.uri == "memory://"  # runs log to the store the app reads

    run(body())


def test_editing_with_the_keyboard():
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            form.focus()
            form.move_cursor(row=form.get_row_index("budget.epochs"))
            await pilot.pause()
            assert "budget.epochs: Training epochs" in str(app.screen.query_one("#field-help").render())
            await pilot.press("enter")  # edit: the input below the form takes the keys
            await pilot.press("backspace", "1", "2", "enter")
            await pilot.pause()
            assert form.has_focus and form.values["budget.epochs"] == 12
            assert status(app).startswith("✓ 1 run, 12 epochs")
            form.move_cursor(row=form.get_row_index("averaging.variant"))
            await pilot.press("enter", "enter")  # open the select
            await pilot.pause()
            await pilot.press("up", "enter")  # the variant listed before pswa
            await pilot.pause()
            assert form.values["averaging.variant"] == "none"
            await pilot.press("escape", "ctrl+r")
            await pilot.pause()
            (h,) = launcher.handles
            assert (h.spec.budget.epochs, h.spec.averaging.variant) == (12, "none")

    run(body())


def test_lr_preview_marks_the_averaging_windows():
    async def body():
        app = build_app(FakeLauncher(), MemoryStore(), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            preview = app.screen.query_one(LRPreview)
            assert [(s.start, s.end, s.label) for s in preview.data.spans] == [(2, 4, "w1"), (4, 6, "w2"), (6, 8, "w3")]
            assert preview.data.series[0].ys[0] == 0.05
            assert "3 windows: 2-4↺, 4-6↺, 6-8" in str(app.screen.query_one("#plan-summary").render())
            set_field(form, "averaging.variant", "swa")
            await pilot.pause()
            assert [(s.start, s.end) for s in preview.data.spans] == [(2, 8)]
            assert "w1" in str(preview.render())

    run(body())


def test_device_choices_list_the_gpus_the_launcher_found():
    async def body():
        app = build_app(FakeLauncher(gpus=[0, 1]), MemoryStore(), preset="quickstart")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            assert form.choices["device"] == ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]

    run(body())


def test_more_seeds_launch_a_study_through_run_study(mlflow_uri):
    from mlflow.tracking import MlflowClient

    def script(h):
        yield "start", {}
        for _ in range(h.epochs):
            yield "epoch", {"metrics": {"backbone/test_acc": 90.0}}
        yield "finish", {"final": {"final/backbone_test_acc": 90.0}}

    async def body():
        launcher = FakeLauncher(autoplay=script)
        app = build_app(launcher, MemoryStore(uri=mlflow_uri), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(app, pilot)
            app.pane("launch").form.set_input("launch.seeds", "2")
            await pilot.pause()
            assert "study: 1 configuration(s) × 2 seed(s) = 2 runs" in status(app)
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert [h.spec.seed for h in launcher.handles] == [0, 1]
            assert {h.tags["study.seed"] for h in launcher.handles} == {"0", "1"}
            parent = launcher.handles[0].parent_run_id
            assert parent and all(h.parent_run_id == parent for h in launcher.handles)
            assert MlflowClient(mlflow_uri).get_run(parent).info.status == "FINISHED"
            assert all(r.status == "FINISHED" for r in app.board.rows.values())

    run(body())


def test_the_status_line_counts_the_runs_of_the_effective_grid_and_seeds_follow_the_preset(mlflow_uri):
    """table4: a 3 x 4 grid and [study] seeds = 3; its smoke scale pins the model (4
    cells), a variant picked in the form pins the variant (1 cell). The line says what
    ctrl+r submits, and the seeds field follows the preset picked."""
    async def body():
        launcher = FakeLauncher()
        app = build_app(launcher, MemoryStore(uri=mlflow_uri), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            assert form.values["launch.seeds"] == 1 and status(app).startswith("✓ 1 run, 8 epochs")
            set_field(form, "launch.seeds", "4")
            set_field(form, "launch.preset", "table4")
            await pilot.pause()
            assert form.values["launch.seeds"] == 3 and form.text("launch.seeds") == "3"
            assert "study: 4 configuration(s) × 3 seed(s) = 12 runs" in status(app)
            set_field(form, "averaging.variant", "swa")
            await pilot.pause()
            assert "study: 1 configuration(s) × 3 seed(s) = 3 runs" in status(app)
            set_field(form, "launch.seeds", "2")
            await pilot.pause()
            assert "study: 1 configuration(s) × 2 seed(s) = 2 runs" in status(app)
            await pilot.press("ctrl+r")
            for _ in range(200):
                await pilot.pause(0.05)
                if len(launcher.handles) == 2:
                    break
            assert [(h.spec.averaging.variant, h.spec.model.name, h.spec.seed) for h in launcher.handles] == [
                ("swa", "vgg16", 0), ("swa", "vgg16", 1)]
            for h in launcher.handles:
                launcher.play(h, [{"backbone/test_acc": 90.0}])
            await app.workers.wait_for_complete()
            set_field(form, "launch.preset", "quickstart")
            await pilot.pause()
            assert form.values["launch.seeds"] == 1 and status(app).startswith("✓ 1 run, 8 epochs")

    run(body())


def test_the_seeds_field_starts_at_the_presets_study_seeds():
    async def body():
        app = build_app(FakeLauncher(), MemoryStore(), preset="table4")
        async with app.run_test(size=(80, 24)) as pilot:
            form = await ready(app, pilot)
            assert form.values["launch.seeds"] == 3
            assert "study: 12 configuration(s) × 3 seed(s) = 36 runs" in status(app)

    run(body())
