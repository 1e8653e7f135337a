"""The training loop: executes a plan of averaging windows over a backbone run.

Per epoch: set the LR per iteration from the schedule, train, take samples for
every window active in the epoch on that window's cadence (after the epoch's last
step, or every ``every`` iterations) with its weighting (equal mean or EMA: one
path, see :class:`~workbench.engine.plan.Window`), evaluate the backbone, evaluate
the window's average (BN recalibrated), and at the end of a window that restarts:
weights <- average (with its recomputed BN statistics), optimizer state reset,
schedule continues.

Losses and accuracies are accumulated on the device and read once per epoch
(no ``.item()`` per step).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from workbench.engine.averaging import WeightAverage
from workbench.engine.bn import recalibrate_bn
from workbench.engine.events import Epoch, Event, Initial
from workbench.engine.plan import Plan, Window, build_plan
from workbench.engine.schedules import RunShape, build_schedule


def make_optimizer(spec, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                               nesterov=spec.nesterov and spec.momentum > 0)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay)


class _Sums:
    """Loss and correct-prediction sums over batches. On an accelerator they stay on the
    device and are read once at the end (no host sync per batch); on a CPU a read costs
    nothing, so they are Python numbers (four fewer tiny tensor ops per batch, which is
    measurable on full-batch graph epochs of a few milliseconds)."""

    def __init__(self, device: torch.device):
        self.host = device.type == "cpu"
        self.count = 0
        if self.host:
            self.loss, self.correct = 0.0, 0
        else:
            self.loss = torch.zeros((), dtype=torch.float64, device=device)
            self.correct = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, loss: torch.Tensor, correct, n: int) -> None:
        if self.host:
            self.loss += float(loss.detach()) * n
            self.correct += int(correct)
        else:
            self.loss += loss.detach().double() * n
            self.correct += correct
        self.count += n

    def means(self) -> tuple[float, float]:
        """(mean loss, accuracy in %); the one host read on an accelerator."""
        loss, correct = (self.loss, self.correct) if self.host else (self.loss.item(), self.correct.item())
        return loss / max(self.count, 1), 100.0 * correct / max(self.count, 1)


@torch.no_grad()
def evaluate(task, model: nn.Module, split: str, autocast=contextlib.nullcontext) -> tuple[float, float]:
    """(mean loss, accuracy in %) of ``model`` on a split; one host read at the end."""
    was = model.training
    model.eval()
    sums = _Sums(task.device)
    for batch in task.eval_batches(split):
        with autocast():
            loss, c, n = task.loss(model, batch)
        sums.add(loss, c, n)
    model.train(was)
    return sums.means()


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    initial: dict[str, float] = field(default_factory=dict)  # step 0, when averaging starts at once


class Trainer:
    """Runs one spec on one task. ``emit`` receives an Event per epoch."""

    def __init__(self, spec, task, model: nn.Module, emit: Callable[[Event], None] = lambda e: None,
                 run_id: Optional[str] = None, precision: Optional[str] = None):
        self.spec = spec
        self.task = task
        self.model = model
        self.emit = emit
        self.run_id = run_id
        self.epochs = spec.budget.epochs
        self.ipe = task.iters_per_epoch
        self.plan: Plan = build_plan(spec.averaging, self.epochs)
        self.shape = RunShape(self.epochs, self.ipe, self.plan.averaging_start)
        self.lr_at = build_schedule(spec.schedule, self.shape)
        self.opt = make_optimizer(spec.optimizer, model, self.lr_at(0))
        self.avg: Optional[WeightAverage] = None
        self.avg_model: Optional[nn.Module] = None
        if self.plan.averages:
            self.avg = WeightAverage(model, spec.averaging.buffers)
            # A second module to evaluate the average in; built once from the backbone.
            self.avg_model = copy.deepcopy(model)
        # With averaging.keep_samples: (window, sample number, CPU fp32 parameters) of every
        # window sample, for analyses of the samples' spread (memory: one model per sample).
        self.samples: list[tuple[int, int, dict[str, torch.Tensor]]] = []
        self._prepared: Optional[tuple[int, int]] = None  # (window, n) whose average is in avg_model
        self.window_index = -1
        self.history = History()
        dev = task.device
        precision = precision or ("fp32" if spec.precision == "auto" else spec.precision)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.autocast = (lambda: torch.autocast(dev.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.scaler = torch.amp.GradScaler(dev.type) if precision == "fp16" else None
        # The compiled wrapper trains; averages, BN recalibration and evaluation use the
        # eager module (same parameters), so nothing recompiles for them.
        self.train_model = torch.compile(model) if spec.compile else model

    # -- one epoch of training ----------------------------------------------------
    def _train_epoch(self, epoch: int, active: tuple[Window, ...]) -> dict[str, float]:
        """Train one epoch, sampling for each of the ``active`` windows on its cadence."""
        model, opt, task = self.model, self.opt, self.task
        model.train()
        sums = _Sums(task.device)
        new_samples = 0
        it = epoch * self.ipe
        lr = None
        per_step = [w for w in active if not w.samples_at_epoch_end]
        for batch in task.train_batches(epoch):
            lr_now = self.lr_at(it)
            if lr_now != lr:
                lr = lr_now
                for g in opt.param_groups:
                    g["lr"] = lr
            with self.autocast():
                loss, c, n = task.loss(self.train_model, batch)
            opt.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(opt)
                self.scaler.update()
            else:
                loss.backward()
                opt.step()
            sums.add(loss, c, n)
            it += 1
            for w in per_step:
                if w.samples_after_step(it, self.ipe):
                    self._sample(w)
                    new_samples += 1
        for w in active:
            if w.samples_at_epoch_end:
                self._sample(w)  # one sample per epoch: the weights after the epoch's last step
                new_samples += 1
        train_loss, train_acc = sums.means()  # host sync, once per epoch
        out = {
            "lr": float(lr if lr is not None else self.lr_at(epoch * self.ipe)),
            "backbone/train_loss": train_loss,
            "backbone/train_acc": train_acc,
        }
        if active:
            out["average/new_samples"] = float(new_samples)
        return out

    def _sample(self, window: Window) -> None:
        """Fold the backbone's weights into the average with the window's weighting."""
        self.avg.update(window.weighting, window.decay)
        if self.spec.averaging.keep_samples and window.numbered:
            params = {n: p.detach().float().cpu().clone() for n, p in self.model.named_parameters()}
            self.samples.append((window.index + 1, self.avg.n, params))

    # -- the average ----------------------------------------------------------------
    def prepare_average(self) -> nn.Module:
        """Load the current average into ``avg_model`` and recompute its BN statistics.

        Cached: evaluating and then restarting from the same average pays the BN
        pass once. The pass runs under a forked RNG, so dropout inside it does
        not shift the backbone's random stream.
        """
        key = (self.window_index, self.avg.n)
        if self._prepared == key:
            return self.avg_model
        self.avg.write_to(self.avg_model, self.model)
        if self.avg.policy == "recompute":
            a = self.spec.averaging
            devices = [self.task.device] if self.task.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), self.autocast():
                recalibrate_bn(self.avg_model, self.task.bn_batches(), self.task.forward, a.bn_estimator, a.bn_batches)
        self._prepared = key
        return self.avg_model

    def restart(self) -> None:
        """Backbone <- the window's average (with its recomputed BN buffers);
        optimizer state reset (SGD momentum buffers to zero), as the reference."""
        avg_model = self.prepare_average()
        with torch.no_grad():
            src = list(avg_model.state_dict().values())
            dst = list(self.model.state_dict().values())
            for d, s in zip(dst, src):
                d.copy_(s)
        if self.spec.averaging.restart_optimizer == "reset":
            self.opt.state.clear()

    # -- evaluation -----------------------------------------------------------------
    def _eval(self, model: nn.Module, prefix: str, out: dict[str, float]) -> None:
        for split in self.task.eval_splits:
            loss, acc = evaluate(self.task, model, split, self.autocast)
            out[f"{prefix}/{split}_loss"] = loss
            out[f"{prefix}/{split}_acc"] = acc

    def _average_eval_due(self, epoch: int, active: tuple[Window, ...]) -> bool:
        """At the run's last epoch, a window's last, and every ``averaging.eval_every``
        epochs counted from a window's start."""
        every = self.spec.averaging.eval_every
        last = epoch == self.epochs - 1
        return any(last or epoch == w.end - 1 or bool(every and (epoch - w.start + 1) % every == 0) for w in active)

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a run needs to continue bit-exactly from the next epoch: weights,
        optimizer, averager (sums, count, window), task and global RNG streams, history."""
        cuda = self.task.device.type == "cuda"
        return {
            "epoch": len(self.history.epochs),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "average": self.avg.state_dict() if self.avg is not None else None,
            "window_index": self.window_index,
            "history": list(self.history.epochs),
            "samples": list(self.samples),
            "task": self.task.state_dict() if hasattr(self.task, "state_dict") else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.task.device) if cuda else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.avg is not None and state["average"] is not None:
            self.avg.load_state_dict(state["average"])
        self.window_index = state["window_index"]
        self.history.epochs = list(state["history"])
        self.samples = list(state["samples"])
        if state["task"] is not None:
            self.task.load_state_dict(state["task"])
        torch.set_rng_state(state["rng"].cpu())  # map_location may have moved it; RNG states live on the host
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.task.device)
        self._prepared = None

    # -- the run ----------------------------------------------------------------------
    def fit(self, checkpoint: Optional[Callable[[dict[str, Any]], None]] = None, every: int = 0) -> History:
        """Train from the next epoch to the end. With ``checkpoint`` and ``every``, hand
        a state dict to ``checkpoint`` after every ``every``-th epoch."""
        t_start = time.perf_counter()
        first = len(self.history.epochs)
        if first == 0 and self.plan.averaging_start == 0:
            # Averaging from the first epoch (e.g. from a pretrained model): the backbone's
            # accuracy at the averaging start is that of the initial weights, logged at step 0.
            initial: dict[str, float] = {}
            self._eval(self.model, "backbone", initial)
            self.history.initial = initial
            self.emit(Initial(run_id=self.run_id, metrics=initial, epochs=self.epochs))
        for epoch in range(first, self.epochs):
            t0 = time.perf_counter()
            active = self.plan.windows_at(epoch)
            for w in active:
                if epoch == w.start:
                    self.avg.reset()  # a window's average starts from its own first sample
                self.window_index = w.index
            metrics = self._train_epoch(epoch, active)
            last = epoch == self.epochs - 1
            if last or (epoch + 1) % self.spec.budget.eval_every == 0:
                self._eval(self.model, "backbone", metrics)
            for w in active:
                if w.numbered:
                    metrics["window"] = float(w.index + 1)
            if active and self.avg.n:
                metrics["average/n_samples"] = float(self.avg.n)
            if active and self.avg.n and self._average_eval_due(epoch, active):
                self._eval(self.prepare_average(), "average", metrics)
            for w in active:
                if w.restart and epoch == w.end - 1:
                    self.restart()
            metrics["time/epoch_s"] = time.perf_counter() - t0
            self.history.epochs.append({"epoch": epoch + 1, **metrics})
            elapsed = time.perf_counter() - t_start
            self.emit(Epoch(run_id=self.run_id, step=epoch + 1, metrics=metrics, epochs=self.epochs, elapsed_s=elapsed,
                            eta_s=elapsed / (epoch + 1 - first) * (self.epochs - epoch - 1)))
            if checkpoint is not None and every and (epoch + 1) % every == 0 and epoch + 1 < self.epochs:
                checkpoint(self.state_dict())
        self.history.final = self._final()
        return self.history

    def _final(self) -> dict[str, float]:
        last = self.history.epochs[-1]
        final = {}
        for split in self.task.eval_splits:
            for what in ("acc", "loss"):
                for who in ("backbone", "average"):
                    key = f"{who}/{split}_{what}"
                    if key in last:
                        final[f"final/{who}_{split}_{what}"] = last[key]
        final["time/total_s"] = sum(e["time/epoch_s"] for e in self.history.epochs)
        return final

    def average_state_dict(self) -> Optional[dict[str, torch.Tensor]]:
        """The output average as a full state dict (BN statistics recomputed)."""
        if self.avg is None or self.avg.n == 0:
            return None
        return {k: v.detach().clone() for k, v in self.prepare_average().state_dict().items()}
