"""The launch controller both faces draw: field errors (the CLI's one-line messages,
under the field they name, longest prefix), the device check, seeds, run or study. The
field-error cases run against the terminal app and the notebook panel alike."""
from __future__ import annotations

import asyncio

import pytest

from workbench.faces.launch import SEEDS, SEEDS_MESSAGE, LaunchController, LaunchRefused, error_field
from workbench.testing import FakeLauncher, MemoryStore


def cli_error(overrides: list[str]) -> str:
    """The line `workbench run quickstart --scale smoke --set ...` prints (minus its prefix)."""
    from workbench.presets import load_spec
    from workbench.spec import SpecError

    with pytest.raises(SpecError) as err:
        load_spec("quickstart", overrides=overrides, scale="smoke")
    return str(err.value)


def notebook_errors(edits: dict, launcher: FakeLauncher) -> dict[str, str]:
    from workbench.notebook.launch import LaunchPanel

    p = LaunchPanel(launcher, None, scale="smoke", preview=False)
    for path, value in edits.items():
        if path == SEEDS:
            p.seeds.value = value
        else:
            p.form.inputs[path].value = value
    p.launch()  # refused: nothing submitted
    return {k: v for k, v in p.errors.items()}


def tui_errors(edits: dict, launcher: FakeLauncher) -> dict[str, str]:
    from workbench.tui.app import build_app
    from workbench.tui.widgets.spec_form import SpecForm

    async def body():
        app = build_app(launcher, MemoryStore(), preset="quickstart", scale="smoke")
        async with app.run_test(size=(80, 24)) as pilot:
            await app.workers.wait_for_complete()
            for _ in range(50):
                await pilot.pause()
                if app.pane("launch").loaded:
                    break
            form = app.screen.query_one(SpecForm)
            for path, value in edits.items():
                kind = form.fields[path]["type"]
                form.set_input(path, value if kind == "choice" else str(value))
            await pilot.pause()
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            return dict(form.errors)

    return asyncio.run(body())


FACES = {"tui": tui_errors, "notebook": notebook_errors}

CASES = [
    ({"budget.epochs": 0}, "budget.epochs", ["budget.epochs=0"]),
    ({"averaging.start": "50"}, "averaging.start", ["averaging.start=50"]),  # past the run's end
    ({"averaging.variant": "kswa", "averaging.k": 4}, "averaging.k", ["averaging.variant=kswa", "averaging.k=4"]),
    ({"optimizer.momentum": 1.5}, "optimizer.momentum", ["optimizer.momentum=1.5"]),
    ({"model.options": '{"nope": 1}'}, "model.options", ["model.options.nope=1"]),  # names model.options.nope
]


@pytest.mark.parametrize("face", sorted(FACES))
@pytest.mark.parametrize("edits,path,cli", CASES, ids=["epochs", "start", "kswa", "momentum", "options"])
def test_an_invalid_field_is_marked_with_the_cli_message_in_both_faces(face, edits, path, cli):
    launcher = FakeLauncher()
    message = cli_error(cli)
    assert message.startswith(path)
    assert FACES[face](edits, launcher) == {path: message}
    assert launcher.handles == []


@pytest.mark.parametrize("face", sorted(FACES))
def test_cuda_without_a_gpu_is_refused_at_the_device_field_in_both_faces(face):
    launcher = FakeLauncher(gpus=[])
    errors = FACES[face]({"device": "cuda"}, launcher)
    assert errors == {"device": "device: cuda asked for, but no CUDA device is available"}
    assert launcher.handles == []


@pytest.mark.parametrize("face", sorted(FACES))
def test_seeds_below_one_block_launch_with_one_message_in_both_faces(face):
    launcher = FakeLauncher()
    assert FACES[face]({SEEDS: 0}, launcher) == {SEEDS: SEEDS_MESSAGE}
    assert launcher.handles == []


def test_error_field_takes_the_longest_field_path_the_message_names():
    paths = ["model.name", "model.options", "averaging.start", "averaging.start_extra"]
    assert error_field("model.options.nope: unknown option of toy_cnn; options: width", paths) == "model.options"
    assert error_field("averaging.start: 50 must be before the end", paths) == "averaging.start"
    assert error_field("spec: something else", paths) is None


def test_the_controller_launches_one_run_or_a_study_with_validated_cells(mlflow_uri):
    launcher = FakeLauncher()
    c = LaunchController(launcher, mlflow_uri, "quickstart", "smoke")
    c.fields()
    values = c.select()
    assert values.scale == "smoke" and values.seeds == 1 and values.data["budget"]["epochs"] == 8
    check = c.check(values.data, 1)
    assert check.ok and check.status == "1 run, 8 epochs on auto" and check.spec.averaging.variant == "pswa"
    one = c.launch(values.data, 1)
    assert one.kind == "run" and one.handle.spec.tracking.uri == mlflow_uri and one.key.startswith("quickstart-pswa-s0 #")
    # table4: a cell of its grid that the form's options do not fit is refused, nothing submitted
    c.select("table4", None)
    data = c.base()
    data["model"]["options"] = {"width": 0.5}
    with pytest.raises(LaunchRefused) as refused:
        c.launch(data, 2)
    assert refused.value.field == "model.options" and refused.value.message.startswith(
        "model.options.width: unknown option of preresnet164")
    assert len(launcher.handles) == 1
