"""Launcher and studies: child processes, events, cancel, failures, parent/child runs, resume."""
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from workbench.launch.local import LocalLauncher
from workbench.faces.forms import study_grid, study_seeds
from workbench.launch.study import StudyControl, cancel_study, load_study, run_study, running_study
from workbench.presets import load_spec, preset_names, read_preset, scales
from workbench.spec import SpecError

STUDY = """
description = "test study: 2 configurations"
extends = "quickstart"
[budget]
epochs = {epochs}
[averaging]
variant = "swa"
start = 1
[grid]
"averaging.variant" = ["swa", "none"]
[study]
seeds = 2
"""


def write_study(tmp_path: Path, epochs: int = 3) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(epochs=epochs))
    return path


def children(client, parent_id):
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent_id}'")


def test_study_expands_grid_x_seeds_and_validates_every_cell(tmp_path):
    st = load_study(str(write_study(tmp_path)))
    assert len(st.cells) == 4 and st.seeds == [0, 1]
    assert {c.key for c in st.cells} == {"averaging.variant=swa", "averaging.variant=none"}
    assert {(c.spec.averaging.variant, c.spec.seed) for c in st.cells} == {("swa", 0), ("swa", 1), ("none", 0), ("none", 1)}
    pinned = load_study(str(write_study(tmp_path)), overrides=["averaging.variant=dswa", "budget.epochs=5"], seeds=1)
    assert [c.spec.averaging.variant for c in pinned.cells] == ["dswa"]  # --set pins a grid field
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.format(epochs=3).replace('"none"]', '"nope"]'))
    with pytest.raises(SpecError, match=r"^averaging\.variant: .*\(in cell averaging.variant=nope, seed 0\)"):
        load_study(str(bad))


def test_two_configurations_x_two_seeds_end_as_four_children_under_one_parent(tmp_path, mlflow_uri):
    st = load_study(str(write_study(tmp_path)))
    seen = []
    res = run_study(st, workers=2, on_event=lambda h, e: seen.append(e.kind))
    assert res.status == "FINISHED"
    client = MlflowClient(mlflow_uri)
    kids = children(client, res.parent_run_id)
    assert len(kids) == 4 and all(k.info.status == "FINISHED" for k in kids)
    assert {(k.data.tags["study.cell"], k.data.tags["study.seed"]) for k in kids} == {
        ("averaging.variant=swa", "0"), ("averaging.variant=swa", "1"),
        ("averaging.variant=none", "0"), ("averaging.variant=none", "1")}
    parent = client.get_run(res.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["study.kind"] == "parent"
    assert parent.data.params["study.children"] == "4"
    assert seen.count("exit") == 4 and seen.count("epoch") == 12


def test_killing_the_launcher_then_resume_completes_without_repeating_finished_children(tmp_path, mlflow_uri):
    path = write_study(tmp_path, epochs=3)
    cmd = [sys.executable, "-m", "workbench.cli", "study", str(path), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = MlflowClient(mlflow_uri)
    deadline = time.time() + 240
    finished_before = []
    while time.time() < deadline:
        parents = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                     "tags.`study.kind` = 'parent'") if client.search_experiments() else []
        if parents:
            finished_before = [k for k in children(client, parents[0].info.run_id) if k.info.status == "FINISHED"]
            if finished_before:
                break
        time.sleep(0.5)
    assert finished_before, "no child finished in time"
    proc.send_signal(signal.SIGKILL)  # the launcher dies outright
    proc.wait(timeout=30)
    time.sleep(2)  # its running child gets SIGTERM through the parent-death signal
    parent_id = parents[0].info.run_id
    kept = {k.info.run_id for k in finished_before}
    out = subprocess.run(cmd + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"resumed: {len(kept)} finished run(s) kept" in out.stdout or "finished run(s) kept" in out.stdout
    kids = children(client, parent_id)
    finished = [k for k in kids if k.info.status == "FINISHED"]
    assert len(finished) == 4
    assert kept <= {k.info.run_id for k in finished}  # the first ones were not rerun
    keys = [(k.data.tags["study.cell"], k.data.tags["study.seed"]) for k in finished]
    assert len(set(keys)) == 4  # no (cell, seed) finished twice
    assert all(k.info.status in ("FINISHED", "KILLED") for k in kids)
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_failed_run_does_not_stop_the_others_and_cancel_marks_killed(tmp_path, mlflow_uri):
    launcher = LocalLauncher(workers=2)
    good = load_spec("quickstart", scale="smoke")
    bad = load_spec("quickstart", scale="smoke", overrides=["dataset.name=cifar10", f"dataset.root={tmp_path}"])
    slow = load_spec("quickstart", overrides=["budget.epochs=400"])
    h_bad = launcher.submit(bad, key="bad")
    h_good = launcher.submit(good, key="good")
    h_slow = launcher.submit(slow, key="slow")
    deadline = time.time() + 240
    while h_slow.epoch < 2 and time.time() < deadline:
        time.sleep(0.2)
    launcher.cancel(h_slow)
    launcher.wait(timeout=240)
    assert h_good.status == "FINISHED" and h_good.final["final/average_test_acc"] > 50
    assert h_bad.status == "FAILED" and "dataset.root" in h_bad.error
    assert h_slow.status == "KILLED"
    assert MlflowClient(mlflow_uri).get_run(h_slow.run_id).info.status == "KILLED"
    launcher.shutdown()


def test_cancel_a_queued_run():
    launcher = LocalLauncher(workers=1)
    first = launcher.submit(load_spec("quickstart", overrides=["tracking.enabled=false", "budget.epochs=400"]))
    queued = launcher.submit(load_spec("quickstart", overrides=["tracking.enabled=false"]))
    launcher.cancel(queued)
    assert queued.status == "KILLED"
    launcher.cancel(first)
    launcher.wait(timeout=120)
    assert first.status == "KILLED"
    launcher.shutdown()


def test_children_get_a_thread_budget_and_one_gpu_each(monkeypatch):
    launcher = LocalLauncher(workers=2, gpus=[0, 1])
    assert launcher.workers == 2 and launcher.gpus == [0, 1]
    launcher.shutdown()
    assert LocalLauncher(gpus=[]).workers >= 1


def test_the_faces_count_what_load_study_expands_for_every_preset_and_scale():
    """workbench.faces.forms.study_grid x study_seeds (the faces' status line and seeds default)
    == the cells load_study submits; table4 at smoke: 4 configurations x 3 seeds, the
    graph presets' smoke scales override their seeds with "study.seeds"."""
    seen = {}
    for name in preset_names():
        raw = read_preset(name)
        for scale in [None] + scales(raw):
            grid = study_grid(raw, scale) or {}
            n = math.prod(len(v) for v in grid.values()) * study_seeds(raw, scale)
            assert n == len(load_study(name, scale=scale).cells), (name, scale)
            seen[(name, scale)] = n
    assert seen[("table4", "smoke")] == 12 and seen[("table4", None)] == 36 and seen[("quickstart", "smoke")] == 1
    assert study_seeds(read_preset("mutag"), None) != study_seeds(read_preset("mutag"), "smoke")
    pinned = study_grid(read_preset("table4"), "smoke", ["averaging.variant", "budget.epochs"])
    assert pinned == {"model.name": ["vgg16"]}
    assert study_grid(read_preset("table4"), "smoke", ["averaging.variant", "model.name"]) == {"": [None]}
    assert study_grid(read_preset("quickstart"), "smoke") is None


@pytest.mark.timeout(300)
def test_cancelling_a_running_study_kills_its_parent_and_leaves_no_child_active(mlflow_uri):
    """quickstart, 2 seeds of 400 epochs, one worker: the first child runs, the second
    waits; cancel_study (what both faces call) stops both and the parent ends KILLED."""
    st = load_study("quickstart", seeds=2, overrides=["budget.epochs=400"])
    launcher = LocalLauncher(workers=1, gpus=[])
    control = StudyControl()
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=run_study(st, launcher=launcher, control=control)),
                              daemon=True)
    try:
        thread.start()
        deadline = time.time() + 200
        while not (control.handles and control.handles[0].run_id) and time.time() < deadline:
            time.sleep(0.05)
        first, second = control.handles
        assert first.status == "RUNNING" and second.status == "QUEUED"
        assert running_study(control.parent_run_id) is control
        assert cancel_study(control.parent_run_id, "cancelled by the test")
        thread.join(120)
        assert not thread.is_alive()
    finally:
        launcher.shutdown()
    result = box["r"]
    assert result.status == "KILLED" and [h.status for h in result.handles] == ["KILLED", "KILLED"]
    assert running_study(result.parent_run_id) is None and not cancel_study(result.parent_run_id)
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "KILLED" and parent.data.tags["error"] == "study cancelled by the test"
    kids = children(client, result.parent_run_id)
    assert [k.info.run_id for k in kids] == [first.run_id]  # the queued child never started
    assert all(k.info.status not in ("RUNNING", "SCHEDULED") for k in kids)
    assert kids[0].info.status == "KILLED"


# ----------------------------------------------------------------------------- the event channel

NOISY_PLUGIN = '''
import json, os, sys
from torch import nn
from workbench.registry import MODELS

# A line on stdout that is a valid event of another run: it must never reach the launcher.
FAKE = json.dumps({"kind": "epoch", "run_id": "f" * 32, "step": 99, "metrics": {"backbone/test_acc": 1.0},
                   "epochs": 99, "elapsed_s": 0.0, "eta_s": None})
WROTE = []


class Noisy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if not WROTE and "--events-fd" in sys.argv:  # once: a line on the channel that is no event
            WROTE.append(os.write(int(sys.argv[sys.argv.index("--events-fd") + 1]), b"this is not an event\\n"))
        print(FAKE)
        print("{not json at all")
        print("plain text from a library")
        print("noise on stderr", file=sys.stderr)
        return self.inner(x)


@MODELS.register("noisy_mlp", task="image")
def noisy_mlp(info):
    c, h, w = info.input_shape
    return Noisy(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 16), nn.ReLU(), nn.Linear(16, info.num_classes)))
'''


@pytest.fixture
def noisy_plugin(tmp_path, monkeypatch):
    from workbench import plugins

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "noisy.py").write_text(NOISY_PLUGIN)
    monkeypatch.setenv("WORKBENCH_PLUGINS", str(folder))  # the children inherit it
    monkeypatch.setattr(plugins, "entry_points", lambda group=None: [])
    with plugins.isolated():
        plugins.reload_plugins()  # this process validates the spec: it must know the model too
        yield folder


def run_one(spec, key: str) -> tuple:
    """One run through a real launcher: (handle, the events published for it)."""
    launcher = LocalLauncher(workers=1, gpus=[])
    seen = []
    launcher.subscribe(lambda h, e: seen.append(e))
    try:
        handle = launcher.submit(spec, key=key)
        launcher.wait(timeout=240)
    finally:
        launcher.shutdown()
    return handle, seen


def test_whatever_a_run_prints_its_events_reach_the_launcher_unchanged(noisy_plugin, mlflow_uri, capsys):
    """The child's stdout carries JSON-looking lines (one a valid event of another run),
    broken JSON and text, its stderr noise too: the launcher reads events from their own
    pipe only, so every event arrives as the run logged it and nothing else does. A line
    on the channel that is not an event is said on stderr, not dropped silently."""
    from workbench.engine.events import End, Epoch, Exit, Launched, Queued, Start

    spec = load_spec("quickstart", scale="smoke", overrides=[
        "model.name=noisy_mlp", "budget.epochs=3", "averaging.variant=swa", "averaging.start=1"])
    h, seen = run_one(spec, "noisy")
    assert h.status == "FINISHED", h.error
    assert [type(e) for e in seen] == [Queued, Launched, Start, Epoch, Epoch, Epoch, End, Exit]
    assert all(e.run_id in (None, h.run_id) for e in seen) and h.epoch == 3
    client = MlflowClient(mlflow_uri)
    for e in (e for e in seen if isinstance(e, Epoch)):
        logged = {m: [p.value for p in client.get_metric_history(h.run_id, m) if p.step == e.step] for m in e.metrics}
        assert logged == {m: [v] for m, v in e.metrics.items()}, e.step
    assert h.final == next(e for e in seen if isinstance(e, End)).metrics and h.final["final/average_test_acc"] > 0
    # the library output is kept for error messages, not parsed
    assert "plain text from a library" in h.stdout_tail and '"step": 99' in h.stdout_tail[-3]
    assert "noise on stderr" in h.stderr_tail
    err = capsys.readouterr().err
    assert err.count("workbench: run noisy: not an event: Invalid JSON") == 1 and "'this is not an event'" in err


def test_the_initial_evaluation_reaches_the_handles_curves_at_step_0_as_in_the_store(mlflow_uri):
    """Averaging from epoch 0: the initial weights' metrics arrive as an ``initial``
    event, sit at step 0 of the handle's curves (not an epoch of progress), and the
    handle's live curves are exactly what the store's history gives for the run."""
    from workbench.engine.events import Epoch, Initial
    from workbench.tracking.store import MlflowStore

    spec = load_spec("quickstart", scale="smoke", overrides=["budget.epochs=3", "averaging.start=0"])
    h, seen = run_one(spec, "from-0")
    assert h.status == "FINISHED", h.error
    initial = [e for e in seen if isinstance(e, Initial)]
    assert len(initial) == 1 and seen.index(initial[0]) < min(seen.index(e) for e in seen if isinstance(e, Epoch))
    steps, values = h.curves["backbone/test_acc"]
    assert steps == [0, 1, 2, 3] and values[0] == initial[0].metrics["backbone/test_acc"]
    assert h.curves["backbone/train_loss"][0] == [1, 2, 3]  # no training before step 1
    assert h.epoch == 3 and h.progress == 1.0
    assert MlflowStore(mlflow_uri).history(h.run_id, list(h.curves)) == h.curves


def test_a_bad_events_fd_is_refused_in_one_line_before_anything_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "quickstart", "--scale", "smoke",
                          "--events-fd", "97"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "workbench: --events-fd: 97 is not a file descriptor open for writing (Bad file descriptor)\n"
    assert not (tmp_path / "mlruns").exists()
