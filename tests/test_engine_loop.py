"""The training loop executes plans exactly: sample counts per window, restarts,
sample cadence, EMA, determinism, and that averaging never perturbs the backbone."""
import copy

import pytest
import torch

import workbench
from workbench.engine.loop import Trainer
from workbench.engine.run import build_task
from workbench.spec import validate


def spec(**sections):
    base = {
        "model": {"name": "toy_cnn", "options": {"channels1": 4, "channels2": 8, "hidden": 16}},
        "dataset": {"name": "synthetic", "options": {"n_train": 64, "n_test": 32, "size": 8, "channels": 1}},
        "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"name": "constant", "lr": 0.05},
        "budget": {"epochs": 6, "batch_size": 32, "eval_batch_size": 64},
        "tracking": {"enabled": False},
        "device": "cpu",
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return validate(base)


def trainer_for(s):
    torch.manual_seed(s.seed)
    task, model = build_task(s, torch.device("cpu"))
    return Trainer(s, task, model)


def test_pswa_paper_setting_takes_six_windows_of_twenty_samples():
    s = spec(budget={"epochs": 160, "batch_size": 64, "eval_every": 40},
             averaging={"variant": "pswa", "start": 40, "period": 20, "eval_every": 0},
             schedule={"name": "figure6", "lr": 0.05, "lr_end": 0.01, "horizon": 160})
    t = trainer_for(s)
    assert t.ipe == 1
    hist = t.fit().epochs
    sampled = [e for e in hist if e.get("average/new_samples")]
    assert len(sampled) == 120 and sampled[0]["epoch"] == 41  # first sample: end of epoch 41 (1-based)
    ends = [e for e in hist if "average/test_acc" in e]
    assert [e["epoch"] for e in ends] == [60, 80, 100, 120, 140, 160]  # evaluated at window ends only
    assert [e["average/n_samples"] for e in ends] == [20.0] * 6
    assert [e["window"] for e in ends] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all("average/test_acc" not in e for e in hist[:40])


@pytest.mark.parametrize("variant,windows", [("swa", [6]), ("dswa", [3, 3]), ("tswa", [2, 2, 2])])
def test_window_sample_counts(variant, windows):
    t = trainer_for(spec(budget={"epochs": 9}, averaging={"variant": variant, "start": 3}))
    hist = t.fit().epochs
    counts = [int(e["average/n_samples"]) for e in hist if e.get("window")]
    ends = [counts[sum(windows[: i + 1]) - 1] for i in range(len(windows))]
    assert ends == windows
    assert all("average/n_samples" not in e for e in hist[:3])


def test_restart_sets_weights_to_the_average_recalibrates_bn_and_zeroes_momentum():
    s = spec(model={"name": "toy_cnn", "options": {"channels1": 4, "channels2": 8, "hidden": 16, "batchnorm": True}},
             budget={"epochs": 6}, averaging={"variant": "dswa", "start": 2, "eval_every": 0})
    t = trainer_for(s)
    seen = {}
    real_restart = t.restart

    def spy():
        avg = {n: a.clone() for n, a in zip(t.avg.names, t.avg.avg)}
        assert any(st for st in t.opt.state.values())  # momentum buffers exist before
        real_restart()
        seen["avg"] = avg
        seen["model"] = {k: v.clone() for k, v in t.model.state_dict().items()}
        seen["avg_model"] = {k: v.clone() for k, v in t.avg_model.state_dict().items()}
        seen["opt_state"] = dict(t.opt.state)

    t.restart = spy
    t.fit()
    assert seen, "the dswa plan must restart once"
    for name, a in seen["avg"].items():
        assert torch.allclose(seen["model"][name], a, atol=1e-7), name
    # BN statistics: the backbone now carries the statistics recomputed for the average...
    bn_keys = [k for k in seen["model"] if k.endswith("running_mean")]
    assert bn_keys
    for k in bn_keys:
        assert torch.equal(seen["model"][k], seen["avg_model"][k])
    # ... which equal a reference-estimator pass, for the averaged weights, over the first
    # BN batches of a fresh task with the same seed (eval_every=0: the restart's pass is the first).
    from workbench.engine.bn import recalibrate_bn

    fresh = trainer_for(s)
    check = fresh.model
    check.load_state_dict(seen["model"])
    for m in check.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(123.0)
    recalibrate_bn(check, fresh.task.bn_batches(), fresh.task.forward, "reference")
    for k in bn_keys:
        assert torch.allclose(check.state_dict()[k], seen["model"][k], atol=1e-6), k
    assert seen["opt_state"] == {}  # momentum reset: the next step starts a fresh buffer


def test_restart_step_equals_a_fresh_sgd_from_the_average():
    """After a restart the first SGD step is exactly that of a new optimizer (momentum zero)."""
    s = spec(budget={"epochs": 4}, averaging={"variant": "dswa", "start": 0, "eval_every": 0},
             optimizer={"name": "sgd", "momentum": 0.9, "weight_decay": 0.0})
    t = trainer_for(s)
    t.fit()
    t.opt.state.clear()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    fresh = torch.optim.SGD(t.model.parameters(), lr=0.05, momentum=0.9)
    before = [p.detach().clone() for p in t.model.parameters()]
    loss = torch.nn.functional.cross_entropy(t.model(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in t.model.parameters()]
    fresh.step()
    for b, gr, p in zip(before, grads, t.model.parameters()):
        assert torch.allclose(p, b - 0.05 * gr)  # first momentum step == plain gradient step


def test_sample_every_c_iterations():
    s = spec(budget={"epochs": 4, "batch_size": 16}, averaging={"variant": "swa", "start": 2, "cycle": 2})
    t = trainer_for(s)
    assert t.ipe == 4
    hist = t.fit().epochs
    assert [e.get("average/new_samples") for e in hist] == [None, None, 2.0, 2.0]
    assert hist[-1]["average/n_samples"] == 4.0


def test_ema_updates_every_k_steps_from_its_start():
    s = spec(budget={"epochs": 4, "batch_size": 16}, averaging={"variant": "ema", "start": 1, "every": 2, "decay": 0.5})
    t = trainer_for(s)
    hist = t.fit().epochs
    assert [e.get("average/new_samples") for e in hist] == [None, 2.0, 2.0, 2.0]
    assert "average/test_acc" in hist[-1] and "final/average_test_acc" in t.history.final


def test_an_ema_run_is_the_papers_ema_rule_on_the_sgd_trajectory_bit_for_bit(monkeypatch):
    """EMA is one window with ema weighting, sampled every ``every`` steps: its average is,
    bit for bit, ``avg <- w`` at the first update, then ``avg <- decay * avg + (1 - decay) * w``
    after every ``every``-th optimizer step counted from the start epoch, applied to the
    backbone of an SGD run with the same seed (averaging never perturbs the backbone);
    its BN statistics are those recomputed for that average."""
    from workbench.engine import loop
    from workbench.engine.bn import recalibrate_bn

    start, every, decay, epochs = 1, 2, 0.9, 4
    ema_spec = spec(model={"name": "toy_cnn", "options": {"channels1": 4, "channels2": 8, "hidden": 16,
                                                           "batchnorm": True}},
                    dataset={"name": "digits", "subset": 96, "options": {}}, threads=1,
                    budget={"epochs": epochs, "batch_size": 32},
                    averaging={"variant": "ema", "start": start, "every": every, "decay": decay, "eval_every": 0})
    ema = workbench.run(ema_spec)

    steps: list[dict[str, torch.Tensor]] = []  # the backbone's parameters after every optimizer step
    real = loop.make_optimizer

    def recording(opt_spec, model, lr):
        opt = real(opt_spec, model, lr)
        opt.register_step_post_hook(
            lambda *_: steps.append({n: p.detach().clone() for n, p in model.named_parameters()}))
        return opt

    monkeypatch.setattr(loop, "make_optimizer", recording)
    sgd = workbench.run(ema_spec.model_copy(update={"averaging": ema_spec.averaging.model_copy(
        update={"variant": "none"})}))
    ipe = len(steps) // epochs
    assert ipe == 3 and len(steps) == epochs * ipe  # 96 examples in batches of 32

    ref: dict[str, torch.Tensor] = {}
    updates = 0
    for k, w in enumerate(steps, start=1):  # k optimizer steps done
        if k > start * ipe and (k - start * ipe) % every == 0:
            updates += 1
            if not ref:
                ref = {n: t.clone() for n, t in w.items()}
            else:
                for n, t in w.items():
                    ref[n].lerp_(t, 1.0 - decay)
    assert updates == 4 and ema.history[-1]["average/n_samples"] == 4.0
    assert [e.get("average/new_samples") for e in ema.history] == [None, 1.0, 2.0, 1.0]
    assert all("window" not in e for e in ema.history)  # an EMA has no window number
    for n in sgd.backbone_state_dict:
        assert torch.equal(ema.backbone_state_dict[n], sgd.backbone_state_dict[n]), n
    for n, t in ref.items():
        assert torch.equal(ema.average_state_dict[n], t), n
    # BN: the first (eval_every = 0: only) recalibration pass of the run, for the reference average
    task, model = build_task(ema_spec, torch.device("cpu"))
    model.load_state_dict(sgd.backbone_state_dict)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(ref[n])
    assert recalibrate_bn(model, task.bn_batches(), task.forward, "reference")
    bn = {n: b for n, b in model.state_dict().items() if "running" in n}
    assert bn
    for n, b in bn.items():
        assert torch.equal(ema.average_state_dict[n], b), n


def test_same_seed_gives_identical_final_weights_and_another_seed_does_not():
    s = spec(averaging={"variant": "pswa", "start": 2, "period": 2},
             model={"name": "toy_cnn", "options": {"channels1": 4, "channels2": 8, "hidden": 16, "batchnorm": True}})
    a = workbench.run(s)
    b = workbench.run(s)
    for k in a.backbone_state_dict:
        assert torch.equal(a.backbone_state_dict[k], b.backbone_state_dict[k]), k
    for k in a.average_state_dict:
        assert torch.equal(a.average_state_dict[k], b.average_state_dict[k]), k
    c = workbench.run(s.model_copy(update={"seed": 1}))
    assert not torch.equal(a.backbone_state_dict["0.weight"], c.backbone_state_dict["0.weight"])


def test_averaging_never_perturbs_the_backbone():
    """An SWA run's backbone is the SGD run's backbone: sampling, BN passes with dropout
    and evaluation of the average draw no randomness from the training stream."""
    opts = {"channels1": 4, "channels2": 8, "hidden": 16, "batchnorm": True, "dropout": 0.5}
    sgd = workbench.run(spec(model={"name": "toy_cnn", "options": opts}, averaging={"variant": "none"}))
    swa = workbench.run(spec(model={"name": "toy_cnn", "options": opts}, averaging={"variant": "swa", "start": 2}))
    for k in sgd.backbone_state_dict:
        assert torch.equal(sgd.backbone_state_dict[k], swa.backbone_state_dict[k]), k
    assert sgd.metrics["final/backbone_test_acc"] == swa.metrics["final/backbone_test_acc"]


def test_bf16_precision_on_cpu_keeps_fp32_weights_and_averages():
    s = spec(precision="bf16", averaging={"variant": "swa", "start": 3})
    r = workbench.run(s)
    assert all(v.dtype == torch.float32 for k, v in r.average_state_dict.items() if v.is_floating_point())
    assert r.metrics["final/average_test_acc"] >= 0


def test_validation_split_adds_val_metrics_for_backbone_and_average():
    s = spec(dataset={"name": "synthetic", "val_fraction": 0.25,
                      "options": {"n_train": 64, "n_test": 32, "size": 8, "channels": 1}},
             averaging={"variant": "swa", "start": 3})
    t = trainer_for(s)
    assert t.task.eval_splits == ("val", "test") and t.task.n == 48
    hist = t.fit().epochs
    for key in ("backbone/val_acc", "backbone/val_loss", "average/val_acc", "backbone/test_acc"):
        assert key in hist[-1], key
    assert "final/average_val_acc" in t.history.final


def test_average_eval_cadence_is_a_spec_field():
    every2 = trainer_for(spec(budget={"epochs": 8}, averaging={"variant": "swa", "start": 2, "eval_every": 2}))
    evaluated = [e["epoch"] for e in every2.fit().epochs if "average/test_acc" in e]
    assert evaluated == [4, 6, 8]
    ends = trainer_for(spec(budget={"epochs": 8}, averaging={"variant": "dswa", "start": 2, "eval_every": 0}))
    assert [e["epoch"] for e in ends.fit().epochs if "average/test_acc" in e] == [5, 8]


def test_keep_samples_saves_every_window_sample(mlflow_uri):
    from mlflow.tracking import MlflowClient

    s = spec(budget={"epochs": 5}, averaging={"variant": "dswa", "start": 1, "keep_samples": True},
             tracking={"enabled": True})
    r = workbench.run(s)
    assert [(w, k) for w, k, _ in r.samples] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # the last window's samples average to the output average
    last = [sd for w, _, sd in r.samples if w == 2]
    mean = (last[0]["0.weight"] + last[1]["0.weight"]) / 2
    assert torch.allclose(mean, r.average_state_dict["0.weight"], atol=1e-6)
    names = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(r.run_id, "samples")}
    assert names == {f"samples/w{w:02d}_s{k:03d}.pt" for w, k in [(1, 1), (1, 2), (2, 1), (2, 2)]}


def test_a_killed_pswa_run_resumes_bit_exactly(mlflow_uri, monkeypatch, tmp_path):
    """Crash mid-window, resume from the checkpoint, and end with the same weights,
    average and metrics as an uninterrupted run (STYLE item 7)."""
    from mlflow.tracking import MlflowClient

    from workbench.engine import loop
    from workbench.engine.run import checkpoint_path, resume

    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path / "ckpt"))
    opts = {"channels1": 4, "channels2": 8, "hidden": 16, "batchnorm": True, "dropout": 0.3}
    s = spec(model={"name": "toy_cnn", "options": opts}, budget={"epochs": 9, "checkpoint_every": 2},
             averaging={"variant": "pswa", "start": 1, "period": 3, "keep_samples": True}, tracking={"enabled": True})
    full = workbench.run(s)

    real = loop.Trainer._train_epoch

    def crash_at_6(self, epoch, window):
        if epoch == 5:  # 0-based: after the checkpoint at epoch 4, inside window 2
            raise KeyboardInterrupt
        return real(self, epoch, window)

    monkeypatch.setattr(loop.Trainer, "_train_epoch", crash_at_6)
    with pytest.raises(KeyboardInterrupt):
        workbench.run(s)
    client = MlflowClient(mlflow_uri)
    killed = [r for r in client.search_runs([client.get_experiment_by_name("workbench").experiment_id])
              if r.info.status == "KILLED"]
    assert len(killed) == 1
    run_id = killed[0].info.run_id
    assert checkpoint_path(s.tracking.uri or mlflow_uri, run_id).exists()
    monkeypatch.setattr(loop.Trainer, "_train_epoch", real)
    resumed = resume(run_id)
    assert resumed.run_id == run_id
    for k in full.backbone_state_dict:
        assert torch.equal(full.backbone_state_dict[k], resumed.backbone_state_dict[k]), k
    for k in full.average_state_dict:
        assert torch.equal(full.average_state_dict[k], resumed.average_state_dict[k]), k
    assert resumed.metrics == {k: v for k, v in full.metrics.items() if k != "time/total_s"} | {
        "time/total_s": resumed.metrics["time/total_s"]}
    assert len(resumed.samples) == len(full.samples) == 8
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    hist = client.get_metric_history(run_id, "backbone/test_acc")
    assert sorted({h.step for h in hist}) == list(range(1, 10))
    # epoch 5 ran after the last checkpoint, before the crash: it is redone and logged
    # again at the same step, with the same value (the MLflow UI shows the latest)
    redone = [h.value for h in hist if h.step == 5]
    assert len(redone) == 2 and redone[0] == redone[1]
    assert not checkpoint_path(mlflow_uri, run_id).exists()


@pytest.mark.parametrize("old_checkpoint", [False, True], ids=["checkpoint", "pre-window-checkpoint"])
def test_an_ema_run_resumes_bit_exactly_from_a_checkpoint_inside_its_window(old_checkpoint):
    """A checkpoint mid-EMA continues to the same average as an uninterrupted run, also one
    written before EMA was a window (``window_index`` -1 then): the EMA is not restarted."""
    s = spec(budget={"epochs": 6, "batch_size": 16},
             averaging={"variant": "ema", "start": 1, "every": 3, "decay": 0.8})
    full = trainer_for(s)
    states = []
    full.fit(lambda st: states.append(copy.deepcopy(st)), every=3)  # as saved: the live tensors move on
    assert len(states) == 1 and states[0]["average"]["n"] > 0  # after epoch 3, inside the EMA
    state = dict(states[0], window_index=-1) if old_checkpoint else states[0]
    resumed = trainer_for(s)
    resumed.load_state_dict(state)
    resumed.fit()
    assert resumed.avg.n == full.avg.n
    for a, b in zip(full.avg.avg, resumed.avg.avg):
        assert torch.equal(a, b)
    assert resumed.history.epochs[3:] == [dict(e, **{"time/epoch_s": r["time/epoch_s"]})
                                          for e, r in zip(full.history.epochs[3:], resumed.history.epochs[3:])]


def test_resume_needs_a_checkpoint(mlflow_uri):
    from workbench.engine.run import resume
    from workbench.spec import SpecError

    with pytest.raises(SpecError, match="^resume: no run"):
        resume("0123456789abcdef")
    with pytest.raises(SpecError, match="checkpoint_every: checkpoints belong to a tracked run"):
        spec(budget={"checkpoint_every": 2})


class _Payload:
    """An object a pickle-based loader would construct, running code on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_refuses_a_checkpoint_holding_pickled_objects(mlflow_uri, tmp_path):
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from workbench.engine.run import checkpoint_path, resume
    from workbench.spec import SpecError

    s = spec(tracking={"enabled": True, "uri": mlflow_uri}, budget={"epochs": 2, "checkpoint_every": 1})
    run_id = workbench.run(s).run_id
    client = MlflowClient(mlflow_uri)
    client.set_terminated(run_id, "KILLED")  # as if killed after its first checkpoint
    path = checkpoint_path(mlflow_uri, run_id)
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 1, "model": _Payload(marker)}, path)
    with pytest.raises(SpecError, match=r"^resume: checkpoint .* holds a pickled object \(io.open\), not only tensors and plain values; refusing"):
        resume(run_id, uri=mlflow_uri)
    assert not marker.exists()
    path.write_bytes(b"not a checkpoint")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "resume", run_id, "--uri", mlflow_uri],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "is unreadable" in out.stderr and str(path) in out.stderr
    assert client.get_run(run_id).info.status == "KILLED"  # nothing was attached or written


def test_averaging_from_the_first_epoch_logs_the_initial_backbone_at_step_0(mlflow_uri):
    """The initial weights' evaluation is its own event kind, and MLflow has it at step 0."""
    from mlflow.tracking import MlflowClient

    from workbench.engine.events import Epoch, Initial

    events = []
    s = spec(averaging={"variant": "swa", "start": 0}, tracking={"enabled": True})
    r = workbench.run(s, sinks=[events.append])
    initial = [e for e in events if isinstance(e, Initial)]
    assert len(initial) == 1 and initial[0].step == 0
    assert set(initial[0].metrics) == {"backbone/test_acc", "backbone/test_loss"}
    assert events.index(initial[0]) < min(events.index(e) for e in events if isinstance(e, Epoch))
    assert [e.step for e in events if isinstance(e, Epoch)] == list(range(1, 7))
    client = MlflowClient(mlflow_uri)
    for name in ("backbone/test_acc", "backbone/test_loss"):
        at_0 = [m.value for m in client.get_metric_history(r.run_id, name) if m.step == 0]
        assert at_0 == [initial[0].metrics[name]], name
    assert not [m for m in client.get_metric_history(r.run_id, "backbone/train_loss") if m.step == 0]
    # without averaging from epoch 0 there is no initial evaluation
    events.clear()
    workbench.run(spec(averaging={"variant": "swa", "start": 3}), sinks=[events.append])
    assert not any(isinstance(e, Initial) for e in events)
