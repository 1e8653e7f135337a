"""Every registered name, in every registry, is exercised here: the built-ins, the shipped
MRPC plugin (through its entry point) and a plugin written to a temporary folder at
collection time. A new entry (a plugin's too) is picked up without editing this file;
give it cheap options in ``TINY`` when its defaults are slow.

* averaging variants: a 4-epoch digits run whose plan fits the run, and whose trainer
  state, saved after epoch 2 through ``torch.save`` / ``torch.load(weights_only=True)``
  and loaded into a fresh trainer, finishes bit-identical to the uninterrupted run;
* schedules: finite, positive learning rates at every iteration of a run;
* models: built for their task at tiny options on that task's offline data, one
  forward and backward with finite gradients;
* datasets: the offline ones load and feed a training step of their task; the file-backed
  ones, pointed at an empty folder, fail with one line naming what is missing;
* tasks: each trains a step and evaluates on a dataset registered for it.
"""
from __future__ import annotations

import io
import math
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

from workbench import plugins, registry
from workbench.engine.loop import Trainer
from workbench.engine.run import build_task
from workbench.engine.schedules import RunShape, build_schedule
from workbench.spec import SpecError, validate

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A plugin in a temporary folder: an averaging variant, a schedule and a model, so the
# enumeration below is shown to pick plugin entries up.
PLUGIN = textwrap.dedent('''\
    """A temporary plugin: SWA over the last half of the run, a step schedule, an MLP."""
    from torch import nn

    from workbench.engine.plan import Plan, Window, _start
    from workbench.registry import AVERAGERS, MODELS, SCHEDULES


    @AVERAGERS.register("tmp_half_swa", help="SWA over the second half of the run", default_start=0.5)
    def tmp_half_swa(avg, epochs):
        return Plan("tmp_half_swa", (Window(0, _start(avg, epochs), epochs, restart=False),))


    @SCHEDULES.register("tmp_step", help="lr, then lr_end after half of the run")
    def tmp_step(spec, shape):
        half = shape.total_iters // 2
        return lambda it: spec.lr if it <= half else spec.lr_end


    @MODELS.register("tmp_mlp", help="flatten and one linear layer", task="image")
    def tmp_mlp(info, *, hidden: int = 8):
        c, h, w = info.input_shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                             nn.Linear(hidden, info.num_classes))
    ''')
PLUGIN_DIR = Path(tempfile.mkdtemp(prefix="wb-registry-plugin-"))
(PLUGIN_DIR / "tmp_registry_plugin.py").write_text(PLUGIN)


def _with_plugins():
    """The registries with the temporary plugin loaded (and the entry-point plugins)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_PLUGINS", str(PLUGIN_DIR))
    ctx = plugins.isolated()
    ctx.__enter__()
    status = {s.name: s for s in plugins.reload_plugins()}
    assert status["tmp_registry_plugin"].ok, status["tmp_registry_plugin"].error
    return mp, ctx


def _enumerate() -> dict[str, list[str]]:
    mp, ctx = _with_plugins()
    try:
        return {r.kind: r.names() for r in registry.registries()}
    finally:
        ctx.__exit__(None, None, None)
        mp.undo()


NAMES = _enumerate()  # at collection: the parametrisations below are the registries' contents


@pytest.fixture(scope="module", autouse=True)
def _plugins_loaded():
    mp, ctx = _with_plugins()
    yield
    ctx.__exit__(None, None, None)
    mp.undo()


# Cheap options for entries whose defaults are slow; anything absent runs at its defaults.
TINY = {
    "toy_cnn": {"channels1": 4, "channels2": 8, "hidden": 16},
    "vgg16": {"width": 1 / 16},
    "vgg16_bn": {"width": 1 / 16},
    "preresnet": {"depth": 11},
    "wide_resnet": {"depth": 10, "widen": 1},
    "roberta": {"tiny": True},
}
# Input side for image models whose fixed architecture needs more than 32 pixels.
IMAGE_SIDE = {"tv_resnet50": 64, "tv_resnet152": 64, "tv_densenet161": 64}
# A cheap offline dataset per task, for the models and the tasks.
TASK_DATA = {
    "image": ("synthetic", {"n_train": 8, "n_test": 8, "size": 32, "channels": 3}, None),
    "node": ("synthetic_nodes", {"num_nodes": 60, "num_features": 16, "num_classes": 3, "words": 4,
                                 "train_per_class": 4, "num_val": 10, "num_test": 10}, None),
    "graph": ("synthetic_graphs", {"num_graphs": 24, "num_classes": 2}, None),
    "text": ("mrpc", {}, str(FIXTURES)),
}
# Options of the offline datasets that keep them small.
DATASET_OPTIONS = {name: opts for name, opts, _ in TASK_DATA.values()}
DATASET_ROOT = {name: root for name, _, root in TASK_DATA.values()}


def _spec(**sections):
    base = {
        "model": {"name": "toy_cnn", "options": TINY["toy_cnn"]},
        "dataset": {"name": "digits", "subset": 256},
        "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"name": "constant", "lr": 0.05},
        "budget": {"epochs": 4, "batch_size": 64, "eval_batch_size": 256},
        "tracking": {"enabled": False},
        "device": "cpu", "threads": 1, "precision": "fp32",
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return validate(base)


def _trainer(spec) -> Trainer:
    torch.manual_seed(spec.seed)
    task, model = build_task(spec, torch.device("cpu"))
    return Trainer(spec, task, model)


def _through_disk(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # what a resume does: no pickled objects


def _equal(a, b) -> bool:
    return a is None and b is None or (a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a))


def test_every_registry_is_enumerated_and_the_plugins_entries_are_in_it(capsys):
    kinds = {r.kind for r in registry.registries()}
    assert kinds == set(NAMES) == {"model", "dataset", "schedule", "averaging variant", "task"}
    # the temporary plugin's entries and the shipped MRPC plugin's are enumerated
    assert "tmp_half_swa" in NAMES["averaging variant"] and "tmp_step" in NAMES["schedule"]
    assert "tmp_mlp" in NAMES["model"]
    assert {"mrpc"} <= set(NAMES["dataset"]) and "roberta" in NAMES["model"] and "text" in NAMES["task"]
    with capsys.disabled():
        print("\nregistered names: " + ", ".join(f"{k} {len(v)}" for k, v in NAMES.items()))


# -- averaging variants ------------------------------------------------------------------

def _fitting_spec(variant: str):
    """The variant at its default start, else at the first start whose windows split the
    4 epochs (DSWA needs an even budget, TSWA one of three)."""
    errors = []
    for start in (None, 0, 1, 2, 3):
        try:
            return _spec(averaging={"variant": variant, "period": 1, "start": start})
        except SpecError as err:
            errors.append(str(err))
    pytest.fail(f"{variant}: no averaging.start fits a 4-epoch run: {errors}")


@pytest.mark.parametrize("variant", NAMES["averaging variant"])
def test_averaging_variant_plan_fits_and_a_saved_state_resumes_bit_exactly(variant):
    s = _fitting_spec(variant)
    plan = registry.AVERAGERS.get(variant).obj(s.averaging, s.budget.epochs)
    assert plan.variant == variant
    ends = 0
    for w in plan.windows:  # windows lie inside the run, in order, without overlap
        assert ends <= w.start < w.end <= s.budget.epochs, (variant, plan.windows)
        ends = w.end
    assert plan.averages == (registry.AVERAGERS.get(variant).meta.get("default_start", 0.75) is not None)

    whole = _trainer(s)
    whole.fit()
    saved = {}
    half = _trainer(s)
    half.fit(checkpoint=lambda st: saved.setdefault("epoch2", _through_disk(st)), every=2)
    resumed = _trainer(s)
    resumed.load_state_dict(saved["epoch2"])
    resumed.fit()

    assert _equal(resumed.model.state_dict(), whole.model.state_dict()), variant
    assert _equal(resumed.average_state_dict(), whole.average_state_dict()), variant
    last = whole.history.epochs[-1]
    assert all(math.isfinite(v) for v in last.values())
    if plan.averages:
        assert whole.average_state_dict() is not None and "average/test_acc" in last
        assert last["average/n_samples"] >= 1
    else:
        assert whole.average_state_dict() is None and "average/test_acc" not in last


# -- schedules -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES["schedule"])
@pytest.mark.parametrize("phase", ["none", "constant", "cyclic"])
def test_schedule_gives_finite_positive_rates_over_a_run(name, phase):
    s = _spec(schedule={"name": name, "lr": 0.1, "swa_phase": phase},
              averaging={"variant": "swa", "start": 15}, budget={"epochs": 20})
    shape = RunShape(epochs=20, iters_per_epoch=7, averaging_start=15)
    fn = build_schedule(s.schedule, shape)
    rates = [fn(it) for it in range(1, shape.total_iters + 1)]
    assert all(math.isfinite(r) and r > 0 for r in rates), (name, phase, rates)


# -- models, datasets, tasks ---------------------------------------------------------------

def _task_spec(task: str, model: str, dataset: str | None = None):
    ds, opts, root = TASK_DATA[task]
    if dataset is not None:
        ds, opts, root = dataset, DATASET_OPTIONS.get(dataset, {}), DATASET_ROOT.get(dataset)
    options = dict(opts)
    if task == "image" and dataset is None:
        options["size"] = IMAGE_SIDE.get(model, 32)
    return _spec(model={"name": model, "options": TINY.get(model, {})},
                 dataset={"name": ds, "options": options, "root": root, "subset": 0},
                 budget={"batch_size": 4, "eval_batch_size": 8, "epochs": 1},
                 averaging={"variant": "none"})


def _train_step(task, model) -> None:
    model.train()
    batch = next(iter(task.train_batches(0)))
    loss, _, _ = task.loss(model, batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def _model_task(name: str) -> str:
    return registry.MODELS.get(name).meta.get("task", "image")


@pytest.mark.parametrize("name", NAMES["model"])
def test_model_builds_for_its_task_and_trains_a_step(name):
    task_name = _model_task(name)
    if task_name == "text":
        pytest.importorskip("transformers")
    task, model = build_task(_task_spec(task_name, name), torch.device("cpu"))
    assert sum(p.numel() for p in model.parameters()) > 0
    _train_step(task, model)


def _default_model(task: str) -> str:
    return {"image": "toy_cnn", "node": "gcn", "graph": "gin", "text": "roberta"}.get(task) or next(
        n for n in NAMES["model"] if _model_task(n) == task)


@pytest.mark.parametrize("name", NAMES["dataset"])
def test_dataset_loads_offline_or_names_the_missing_files(name, tmp_path):
    entry = registry.DATASETS.get(name)
    task_name = entry.meta["task"]
    if task_name == "text":
        pytest.importorskip("transformers")
    spec = _task_spec(task_name, _default_model(task_name), dataset=name)
    if DATASET_ROOT.get(name) is None:
        spec = spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"root": str(tmp_path)})})
    try:
        task, model = build_task(spec, torch.device("cpu"))
    except SpecError as err:  # a file-backed dataset: one line naming the folder it looked in
        msg = str(err)
        assert "\n" not in msg and str(tmp_path) in msg, msg
        return
    _train_step(task, model)


@pytest.mark.parametrize("name", NAMES["task"])
def test_task_trains_and_evaluates_on_a_dataset_of_its_own(name):
    if name == "text":
        pytest.importorskip("transformers")
    assert any(registry.DATASETS.get(d).meta.get("task") == name for d in NAMES["dataset"]), name
    task, model = build_task(_task_spec(name, _default_model(name)), torch.device("cpu"))
    assert "test" in task.eval_splits
    _train_step(task, model)
    from workbench.engine.loop import evaluate

    model.eval()
    loss, acc = evaluate(task, model, "test")
    assert math.isfinite(loss) and 0.0 <= acc <= 100.0
