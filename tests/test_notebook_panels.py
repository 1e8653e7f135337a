"""Notebook panels without a kernel: the form generated from the spec, field-level
validation that blocks launch, the exact spec a valid form submits, live run rows from
launcher events, mean ± std in Compare, and one real smoke run from the Launch tab to
the Compare tab."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest

from workbench.notebook.compare import ComparePanel
from workbench.notebook.launch import LaunchPanel
from workbench.notebook.runs import RunsPanel
from workbench.notebook.app import workbench_panel
from workbench.testing import FakeLauncher, MemoryStore, sample_store

PNG = b"\x89PNG"
BB, AVG = "backbone/test_acc", "average/test_acc"


def panel(launcher=None, **kw) -> LaunchPanel:
    kw.setdefault("scale", "smoke")
    kw.setdefault("preview", False)
    return LaunchPanel(launcher or FakeLauncher(), kw.pop("store_uri", None), **kw)


def cli_error(overrides: list[str]) -> str:
    """The line `workbench run quickstart --scale smoke --set ...` prints (minus its prefix)."""
    from workbench.presets import load_spec
    from workbench.spec import SpecError

    with pytest.raises(SpecError) as err:
        load_spec("quickstart", overrides=overrides, scale="smoke")
    return str(err.value)


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_form_is_generated_from_the_schema_and_follows_the_variant():
    from workbench.spec import form_fields

    p = panel()
    form = p.form
    fields = {f["path"]: f for f in form_fields()}
    assert set(form.inputs) == set(fields) - {"preset"}
    for path, f in fields.items():
        if path == "preset":
            continue
        widget = form.inputs[path]
        if f["type"] == "choice":
            assert isinstance(widget, w.Dropdown) and [v for _, v in widget.options] == f["choices"], path
        elif f["type"] == "bool":
            assert isinstance(widget, w.Checkbox), path
    assert isinstance(form.inputs["budget.epochs"], w.IntText)
    assert isinstance(form.inputs["schedule.lr"], w.FloatText)
    assert form.inputs["averaging.start"].placeholder == "auto"  # nullable: empty means the default start
    # the preset at its smoke scale fills the form
    assert (p.preset_picker.value, p.scale_picker.value) == ("quickstart", "smoke")
    assert form.inputs["budget.epochs"].value == 8 and form.inputs["averaging.variant"].value == "pswa"
    assert form.inputs["averaging.period"].value == 2
    # per-variant fields: shown only for their variant
    assert form.visible("averaging.period") and not form.visible("averaging.decay")
    assert form.rows["averaging.decay"].layout.display == "none"
    form.inputs["averaging.variant"].value = "ema"
    assert form.visible("averaging.decay") and form.rows["averaging.decay"].layout.display is None
    assert form.rows["averaging.period"].layout.display == "none"
    assert p.status.value.endswith("✓ 1 run, 8 epochs on auto</span>") and p.errors == {}


def test_picking_a_preset_and_scale_refills_the_form():
    p = panel()
    p.preset_picker.value = "digits-dswa"  # smoke scale kept: the preset has one
    assert p.scale_picker.value == "smoke"
    assert p.form.inputs["averaging.variant"].value == "dswa"
    assert p.form.inputs["averaging.start"].value == "4" and p.form.inputs["budget.epochs"].value == 8
    p.scale_picker.value = None
    assert p.form.inputs["averaging.start"].value == "30" and p.form.inputs["budget.epochs"].value == 40
    assert "2 windows" in p.plan.value and "30-35↺, 35-40" in p.plan.value


@pytest.mark.parametrize("edits,path,cli", [
    ({"budget.epochs": 0}, "budget.epochs", ["budget.epochs=0"]),
    ({"averaging.start": "50"}, "averaging.start", ["averaging.start=50"]),  # past the run's end
    ({"averaging.variant": "kswa", "averaging.k": 4}, "averaging.k",  # 6 averaging epochs in 4 windows
     ["averaging.variant=kswa", "averaging.k=4"]),
    ({"optimizer.momentum": 1.5}, "optimizer.momentum", ["optimizer.momentum=1.5"]),
    ({"model.options": '{"nope": 1}'}, "model.options", ["model.options={nope = 1}"]),  # names model.options.nope
], ids=["epochs", "start", "kswa", "momentum", "options"])
def test_an_invalid_field_shows_the_cli_message_under_it_and_blocks_launch(edits, path, cli):
    import html

    fake = FakeLauncher()
    p = panel(fake)
    for k, v in edits.items():
        p.form.inputs[k].value = v
    message = cli_error(cli)
    assert message.startswith(path)
    assert p.errors == {path: message}
    shown = p.form.messages[path]
    assert html.escape(message) in shown.value and shown.layout.display is None
    assert f"fix {path}" in p.status.value and p.launch_button.disabled and p.spec is None
    p.launch_button.click()  # a click on the disabled button, or a call: nothing is submitted
    assert p.launch() is None and fake.handles == []
    assert "Nothing launched" in p.note.value
    p.reset_button.click()  # back to the preset: valid again, message gone
    assert p.errors == {} and shown.layout.display == "none" and not p.launch_button.disabled


def test_an_unknown_preset_stops_with_one_line_naming_the_choices():
    from workbench.spec import SpecError

    with pytest.raises(SpecError, match=r"^preset: unknown preset 'nope'; choose one of: .*quickstart"):
        LaunchPanel(FakeLauncher(), preset="nope")


def test_text_that_does_not_parse_is_named_and_seeds_must_be_positive():
    fake = FakeLauncher()
    p = panel(fake)
    p.form.inputs["averaging.start"].value = "abc"
    assert p.errors == {"averaging.start": "averaging.start: expected an integer, got 'abc'"}
    p.form.inputs["averaging.start"].value = ""  # empty = auto: the variant's default start
    assert p.errors == {} and p.spec.averaging.start == 2  # pswa: 25 % of 8 epochs
    p.seeds.value = 0
    assert p.errors == {"launch.seeds": "seeds: must be at least 1"} and "seeds" in p.seeds_message.value
    assert p.launch() is None and fake.handles == []


def test_a_valid_form_submits_exactly_the_spec_the_cli_would_build():
    from workbench.presets import load_spec

    fake = FakeLauncher()
    p = panel(fake, store_uri="sqlite:///store/mlflow.db")  # relative: pinned to the kernel's folder now
    store_uri = f"sqlite:///{Path('store/mlflow.db').resolve()}"
    assert p.store_uri == store_uri
    edits = {"averaging.variant": "swa", "averaging.start": "5", "budget.epochs": 10, "schedule.lr": 0.1,
             "device": "cpu", "model.options": '{"hidden": 32}', "dataset.augment": False, "seed": 3}
    for path, value in edits.items():
        p.form.inputs[path].value = value
    assert p.errors == {}, p.errors
    p.launch_button.click()
    (handle,) = fake.handles
    want = load_spec("quickstart", scale="smoke", overrides=[
        "averaging.variant=swa", "averaging.start=5", "budget.epochs=10", "schedule.lr=0.1", "device='cpu'",
        "model.options={hidden = 32}", "dataset.augment=false", "seed=3", f"tracking.uri='{store_uri}'"])
    assert handle.spec.model_dump() == want.model_dump()
    assert handle.key.startswith("quickstart-swa-s3 #") and handle.parent_run_id is None
    assert "Queued" in p.note.value and p.launched == [handle]


def test_more_seeds_launch_a_study_with_one_child_per_seed(mlflow_uri):
    def script(h):
        return [("start", {}), ("epoch", {"metrics": {BB: 90.0}}), ("finish", {"final": {"final/backbone_test_acc": 90.0}})]

    fake = FakeLauncher(autoplay=script, delay_s=0.0)
    p = panel(fake, store_uri=mlflow_uri)
    p.seeds.value = 2
    assert "study: 1 configuration(s) × 2 seed(s) = 2 runs" in p.status.value
    thread = p.launch()
    thread.join(60)
    assert not thread.is_alive() and "FINISHED, parent run" in p.note.value
    assert sorted(h.tags["study.seed"] for h in fake.handles) == ["0", "1"]
    assert len({h.parent_run_id for h in fake.handles}) == 1 and fake.handles[0].parent_run_id
    assert {h.spec.tracking.uri for h in fake.handles} == {mlflow_uri}


def test_launcher_events_update_the_runs_table_and_plot():
    from workbench.presets import load_spec

    fake = FakeLauncher()
    runs = RunsPanel(fake, plot_interval_s=0.0)
    spec = load_spec("quickstart", scale="smoke")
    h = fake.submit(spec, key="a")
    assert [r["status"] for r in runs.table_rows()] == ["QUEUED"]
    fake.start(h)
    fake.epoch(h, {BB: 91.25}, eta_s=65.0)
    row = runs.table_rows()[0]
    assert (row["status"], row["epoch"], row["ta"], row["avg_ta"], row["eta"]) == ("RUNNING", "1/8", "91.25", "–", "1m05s")
    assert "RUNNING" in runs.table.value and "91.25" in runs.table.value and "1m05s" in runs.table.value
    fake.epoch(h, {BB: 92.0}, eta_s=30.0)
    fake.epoch(h, {BB: 93.0, AVG: 94.5}, eta_s=10.0)
    assert runs.plot_curves == {"a": {BB: ([1, 2, 3], [91.25, 92.0, 93.0]), AVG: ([3], [94.5])}}
    assert bytes(runs.plot.value).startswith(PNG)
    fake.finish(h, {"final/backbone_test_acc": 93.0, "final/average_test_acc": 94.5})
    row = runs.table_rows()[0]
    assert (row["status"], row["epoch"], row["avg_ta"], row["eta"]) == ("FINISHED", "3/8", "94.50", "")
    assert [k for _, k in runs.picker.options] == ["", "a"]


def test_the_runs_plot_draws_the_initial_evaluation_at_step_0():
    from workbench.presets import load_spec

    fake = FakeLauncher()
    runs = RunsPanel(fake, plot_interval_s=0.0)
    h = fake.submit(load_spec("quickstart", scale="smoke"), key="a")
    fake.start(h)
    fake.initial(h, {BB: 10.0, "backbone/test_loss": 2.3})
    assert runs.plot_curves == {"a": {BB: ([0], [10.0])}} and runs.table_rows()[0]["epoch"] == "0/8"
    fake.epoch(h, {BB: 91.0, AVG: 92.0, "lr": 0.05})
    assert runs.plot_curves == {"a": {BB: ([0, 1], [10.0, 91.0]), AVG: ([1], [92.0])}}
    assert runs.table_rows()[0]["epoch"] == "1/8" and bytes(runs.plot.value).startswith(PNG)


def test_events_from_launcher_threads_and_cancel():
    from workbench.presets import load_spec

    def slow(h):
        return [("start", {})] + [("epoch", {"metrics": {BB: 80.0 + i}, "eta_s": 1.0}) for i in range(200)]

    fake = FakeLauncher(autoplay=slow, delay_s=0.02)
    runs = RunsPanel(fake, plot_interval_s=0.05)
    h = fake.submit(load_spec("quickstart", scale="smoke"), key="slow")
    wait_for(lambda: runs.table_rows()[0]["status"] == "RUNNING" and h.epoch >= 2)
    assert runs.cancel() == "slow"  # "all runs" picked, one active: that one
    assert fake.cancelled == ["slow"]
    wait_for(lambda: runs.table_rows()[0]["status"] == "KILLED")
    assert runs.cancel() is None and runs.note.value == "No active run to cancel."
    # the last plot shows every epoch the run logged (an epoch racing the cancel included)
    wait_for(lambda: runs.plot_curves["slow"][BB][0] == h.curves[BB][0])
    assert runs.plot_curves["slow"][BB][0][:2] == [1, 2]


def compare_numbers(store: MemoryStore, parent: str, variant: str) -> tuple[float, float]:
    vals = [r["metrics"]["final/average_test_acc"] for r in store.records
            if r.get("parent_run_id") == parent and r["params"]["averaging.variant"] == variant]
    assert len(vals) == 3
    return float(np.mean(vals)), float(np.std(vals, ddof=1))


def test_compare_shows_mean_and_std_over_seeds_as_numpy_computes_them():
    store = sample_store()
    cmp = ComparePanel(store)
    parent = "a" * 32
    assert {it.run_id for it in cmp.items} == {parent, "b" * 32, "d" * 32, "e" * 32}
    cmp.pick([parent])
    titles = [t for t, _ in cmp.tables]
    assert titles == ["Backbone TA", "Average TA"]
    table = dict(cmp.tables)["Average TA"]
    assert table.row_keys == ("averaging.variant",)
    for variant, label in (("swa", "SWA"), ("pswa", "PSWA")):
        mean, std = compare_numbers(store, parent, variant)
        cell = table.cell((variant,), ())
        assert cell.n == 3 and cell.mean == pytest.approx(mean) and cell.std == pytest.approx(std)
        assert f"{mean:.2f}" in cmp.stats.value and f"±{std:.2f}" in cmp.stats.value and label in cmp.stats.value
    assert set(cmp.curves) == {"SWA", "PSWA"} and all(len(h) == 3 for h in cmp.curves.values())
    assert bytes(cmp.plot.value).startswith(PNG)
    # two items: the fields that differ
    cmp.pick([parent, "b" * 32])
    assert "averaging.variant" in cmp.diff.value and "{swa, pswa}" in cmp.diff.value and "none" in cmp.diff.value
    # filters narrow the list; nothing picked compares everything shown
    cmp.pick([])
    cmp.filters["variant"].value = "none"
    assert [v for _, v in cmp.picker.options] == ["b" * 32] and cmp.picker.value == ()
    assert [t for t, _ in cmp.tables] == ["Backbone TA"]  # a run without averaging has no average TA
    (cell,) = dict(cmp.tables)["Backbone TA"].cells.values()
    assert cell.values == [store.record("b" * 32)["metrics"]["final/backbone_test_acc"]]
    cmp.filters["variant"].value = ""
    cmp.filters["status"].value = "FAILED"
    assert [v for _, v in cmp.picker.options] == ["d" * 32]
    assert "no finished runs" in cmp.stats.value


def test_compare_reports_an_unreachable_store_in_the_panel():
    class Broken(MemoryStore):
        def items(self):
            raise OSError("no such file: mlflow.db")

    cmp = ComparePanel(Broken(uri="sqlite:///nowhere/mlflow.db"))
    assert "store error: OSError: no such file: mlflow.db" in cmp.note.value and cmp.items == []


def test_workbench_panel_shares_one_launcher_and_store():
    fake, store = FakeLauncher(), sample_store()
    wb = workbench_panel(fake, store, scale="smoke", preview=False)
    assert wb.titles == ("Launch", "Runs", "Compare")
    assert wb.children == (wb.launch_panel, wb.runs_panel, wb.compare_panel)
    handle = wb.launch_panel.launch()
    # runs log where Compare reads: the store's file, whatever folder the run's process is in
    assert handle.spec.tracking.uri == f"sqlite:///{Path('demo/mlflow.db').resolve()}" and store.uri == "sqlite:///demo/mlflow.db"
    assert [r["key"] for r in wb.runs_panel.table_rows()] == [handle.key]
    before = store.calls.count("items")
    fake.play(handle, [{BB: 90.0}, {BB: 91.0, AVG: 92.0}], final={"final/average_test_acc": 92.0})
    assert wb.runs_panel.table_rows()[0]["status"] == "FINISHED"
    wait_for(lambda: store.calls.count("items") > before and not wb.reloading())  # Compare reloads when a run ends
    after_exit = store.calls.count("items")
    wb.selected_index = 2  # and when its tab is opened (on a thread: the kernel stays free)
    wait_for(lambda: store.calls.count("items") > after_exit and not wb.reloading())
    assert len(wb.compare_panel.items) == 4


def test_a_failed_run_shows_failed_with_its_reason():
    from workbench.presets import load_spec

    fake, store = FakeLauncher(), sample_store()
    wb = workbench_panel(fake, store, scale="smoke", preview=False)
    h = fake.submit(load_spec("quickstart", scale="smoke"), key="bad")
    fake.start(h)
    fake.epoch(h, {BB: 50.0})
    fake.fail(h, "RuntimeError: CUDA out of memory\nTraceback (most recent call last): ...")
    row = wb.runs_panel.table_rows()[0]
    assert (row["status"], row["error"]) == ("FAILED", "RuntimeError: CUDA out of memory")
    assert "FAILED" in wb.runs_panel.table.value and "CUDA out of memory" in wb.runs_panel.table.value
    assert "Traceback" not in wb.runs_panel.table.value  # one line, not the traceback
    assert wb.runs_panel.cancel("bad") is None and "already ended (FAILED)" in wb.runs_panel.note.value


def test_reloads_requested_during_a_reload_are_not_lost():
    """Two runs ending together: the second run's reload must not be dropped because the
    first one is still reading the store (it would miss the second run's FINISHED)."""
    from workbench.presets import load_spec

    entered, gate = threading.Event(), threading.Event()

    class Slow(MemoryStore):
        def items(self):
            if not entered.is_set():
                entered.set()
                gate.wait(10)  # the first reload is mid-query
            return super().items()

    fake, store = FakeLauncher(), Slow(sample_store().records)
    wb = workbench_panel(fake, store, scale="smoke", preview=False)
    spec = load_spec("quickstart", scale="smoke")
    a, b = fake.submit(spec, key="a"), fake.submit(spec, key="b")
    fake.play(a, [{BB: 90.0}])
    assert entered.wait(10)
    fake.play(b, [{BB: 91.0}])  # ends while the first reload still reads
    gate.set()
    wait_for(lambda: not wb.reloading())
    assert store.calls.count("items") == 2


def test_a_study_launched_twice_keeps_both_studies_rows(mlflow_uri):
    fake = FakeLauncher()
    wb = workbench_panel(fake, MemoryStore(uri=mlflow_uri), scale="smoke", preview=False)
    lp, runs = wb.launch_panel, wb.runs_panel
    lp.seeds.value = 2
    first = lp.launch()
    wait_for(lambda: len(fake.handles) == 2)
    second = lp.launch()
    wait_for(lambda: len(fake.handles) == 4)
    assert len({h.key for h in fake.handles}) == 2  # the launcher reuses the children's keys
    keys = [r["key"] for r in runs.table_rows()]
    assert len(keys) == 4 and len(set(keys)) == 4, keys
    assert [k for _, k in runs.picker.options][1:] == keys
    for h in fake.handles:
        fake.play(h, [{BB: 90.0}], final={"final/backbone_test_acc": 90.0})
    first.join(30), second.join(30)
    assert [r["status"] for r in runs.table_rows()] == ["FINISHED"] * 4


def test_a_study_cell_that_does_not_validate_is_refused_naming_the_field(mlflow_uri):
    """The form holds the preset's base spec, valid; a cell of its grid may not be
    (table4's preresnet164 cell has no `width` option). One line under the field, nothing
    launched and nothing written to the store."""
    from workbench.tracking.store import MlflowStore

    fake = FakeLauncher()
    p = LaunchPanel(fake, mlflow_uri, preset="table4", preview=False)
    p.form.inputs["model.options"].value = '{"width": 0.5}'
    assert p.errors == {} and not p.launch_button.disabled  # the base cell (vgg16) is fine
    p.launch_button.click()
    assert fake.handles == [] and p.launched == []
    message = p.form.errors["model.options"]
    assert message.startswith("model.options.width: unknown option of preresnet164") and "\n" not in message
    assert p.form.messages["model.options"].layout.display is None
    assert "launch refused: model.options.width" in p.status.value and "Nothing launched" in p.note.value
    assert MlflowStore(mlflow_uri).items() == []


def test_compare_shows_that_a_study_ended(mlflow_uri):
    """The study's parent run is marked FINISHED after its last child's exit: Compare
    reloads once more when the study ends, so it does not stay RUNNING there."""
    from workbench.tracking.store import MlflowStore

    def script(h):
        return [("start", {}), ("finish", {"final": {"final/backbone_test_acc": 90.0}})]

    fake = FakeLauncher(autoplay=script, delay_s=0.0)
    wb = workbench_panel(fake, MlflowStore(mlflow_uri), scale="smoke", preview=False)
    wb.launch_panel.seeds.value = 2
    thread = wb.launch_panel.launch()
    thread.join(60)
    wait_for(lambda: [(it.kind, it.status) for it in wb.compare_panel.items] == [("study", "FINISHED")], 30)


def test_compare_reports_a_store_that_fails_mid_analysis():
    class Broken(MemoryStore):
        def history(self, run_id, metrics):
            raise OSError("database is locked")

    cmp = ComparePanel(Broken(sample_store().records))
    cmp.pick(["a" * 32])
    assert "compare error: OSError: database is locked" in cmp.note.value and cmp.curves == {}


def test_a_relative_store_is_pinned_for_the_launched_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = FakeLauncher()
    wb = workbench_panel(fake, uri="sqlite:///mlruns/mlflow.db", scale="smoke", preview=False)
    want = f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert wb.store.uri == want
    monkeypatch.chdir("/")  # a child process in another folder still logs to the same file
    assert wb.launch_panel.launch().spec.tracking.uri == want


@pytest.mark.timeout(180)
def test_real_smoke_run_from_the_launch_tab_to_compare(mlflow_uri, tmp_path, monkeypatch):
    from workbench.launch.local import LocalLauncher
    from workbench.tracking.store import MlflowStore

    monkeypatch.chdir(tmp_path)
    launcher = LocalLauncher(workers=1, gpus=[])
    try:
        wb = workbench_panel(launcher, MlflowStore(mlflow_uri), preset="quickstart", scale="smoke", preview=False)
        wb.compare_panel.reload()
        assert wb.compare_panel.items == [] and "No runs in" in wb.compare_panel.note.value
        wb.launch_panel.form.inputs["device"].value = "cpu"
        handle = wb.launch_panel.launch()
        assert handle is not None and handle.spec.tracking.uri == mlflow_uri
        seen_running = threading.Event()

        def running():
            row = wb.runs_panel.table_rows()[0]
            if row["status"] == "RUNNING" and row["ta"] != "–":
                seen_running.set()
            return handle.done

        wait_for(running, timeout=150)
        assert handle.status == "FINISHED", handle.error
        row = wb.runs_panel.table_rows()[0]
        assert seen_running.is_set() and (row["status"], row["epoch"]) == ("FINISHED", "8/8")
        assert row["avg_ta"] == f"{handle.metrics[AVG]:.2f}" and row["ta"] == f"{handle.metrics[BB]:.2f}"
        avg = handle.final["final/average_test_acc"]
        cmp = wb.compare_panel
        cmp.reload()
        assert [it.run_id for it in cmp.items] == [handle.run_id]
        table = dict(cmp.tables)["Average TA"]
        (cell,) = table.cells.values()
        assert cell.run_ids == [handle.run_id] and cell.mean == pytest.approx(avg)
        assert f"{avg:.2f}" in cmp.stats.value
        assert set(cmp.curves) == {"all"} and bytes(cmp.plot.value).startswith(PNG)
    finally:
        launcher.shutdown()


def test_the_status_line_counts_the_runs_a_study_launch_submits(mlflow_uri):
    """table4 has a 3 x 4 grid and 3 seeds; its smoke scale pins the model (4 cells), and
    a variant picked in the form pins the variant (1 cell): the line says what Launch submits."""
    fake = FakeLauncher()
    p = panel(fake, store_uri=mlflow_uri, preset="table4")
    assert "study: 4 configuration(s) × 3 seed(s) = 12 runs" in p.status.value
    p.form.inputs["averaging.variant"].value = "swa"
    assert "study: 1 configuration(s) × 3 seed(s) = 3 runs" in p.status.value
    p.seeds.value = 2
    assert "study: 1 configuration(s) × 2 seed(s) = 2 runs" in p.status.value
    thread = p.launch()
    wait_for(lambda: len(fake.handles) == 2)
    assert {h.spec.averaging.variant for h in fake.handles} == {"swa"}
    for h in fake.handles:
        fake.play(h, [{BB: 90.0}])
    thread.join(30)
    assert not thread.is_alive()


def test_a_study_with_a_failed_run_says_failed_and_why(mlflow_uri):
    def script(h):
        if h.tags["study.seed"] == "1":
            return [("start", {}), ("fail", {"error": "RuntimeError: loss is nan\nTraceback ..."})]
        return [("start", {}), ("finish", {"final": {"final/backbone_test_acc": 90.0}})]

    fake = FakeLauncher(autoplay=script, delay_s=0.0)
    p = panel(fake, store_uri=mlflow_uri)
    p.seeds.value = 2
    p.launch().join(60)
    assert "FAILED (1 of 2 runs FAILED: RuntimeError: loss is nan), parent run" in p.note.value
    assert "Traceback" not in p.note.value


def test_the_seeds_box_follows_the_presets_study_seeds():
    p = panel()
    assert p.seeds.value == 1  # quickstart declares no [study] seeds
    p.seeds.value = 5
    p.preset_picker.value = "table4"  # [study] seeds = 3 (its smoke scale keeps them)
    assert p.seeds.value == 3 and "× 3 seed(s)" in p.status.value
    p.preset_picker.value = "quickstart"
    assert p.seeds.value == 1 and p.status.value.endswith("✓ 1 run, 8 epochs on auto</span>")
    assert panel(preset="table4").seeds.value == 3  # at start too
    assert panel(preset="table4", seeds=2).seeds.value == 2  # unless given


def test_cancel_study_stops_every_run_of_the_study_and_kills_its_parent(mlflow_uri):
    from mlflow.tracking import MlflowClient

    fake = FakeLauncher()
    wb = workbench_panel(fake, MemoryStore(uri=mlflow_uri), scale="smoke", preview=False)
    lp, runs = wb.launch_panel, wb.runs_panel
    single = fake.submit(lp.spec, key="single")
    assert runs.cancel_study("single") is None and "not part of a study" in runs.note.value
    lp.seeds.value = 3
    thread = lp.launch()
    wait_for(lambda: len(fake.handles) == 4)
    kids = fake.handles[1:]
    fake.start(kids[0])
    fake.play(kids[1], [{BB: 90.0}], final={"final/backbone_test_acc": 90.0})  # ends before the cancel
    runs.picker.value = next(k for k, h in runs.handles.items() if h is kids[2])
    runs.cancel_study_button.click()
    thread.join(30)
    assert not thread.is_alive()
    assert [h.status for h in kids] == ["KILLED", "FINISHED", "KILLED"] and single.status == "QUEUED"
    parent = MlflowClient(mlflow_uri).get_run(kids[0].parent_run_id)
    assert parent.info.status == "KILLED" and parent.data.tags["error"] == "study cancelled from the notebook"
    assert "KILLED (cancelled from the notebook)" in lp.note.value
    assert [r["status"] for r in runs.table_rows()] == ["QUEUED", "KILLED", "FINISHED", "KILLED"]
    assert runs.cancel_study() is None and runs.note.value == "Study quickstart has no active runs."
    runs.picker.value = ""  # all runs: the only active study, if there is one
    assert runs.cancel_study() is None and runs.note.value == "No active study to cancel."
