"""Learning-rate schedules as data, evaluated per iteration.

Every schedule is a pure function of the 0-based global iteration ``it``; the
epoch is ``it // iters_per_epoch``. Builders are registered by name and receive
the :class:`~workbench.spec.ScheduleSpec` plus the run's shape, so a plugin can
add a schedule with the same decorator.

``swa_phase`` wraps any schedule: from the averaging start it switches to a
constant SWA LR, or to the paper's cyclic LR (what the graph and text
experiments do). Torch-free, so forms can preview a schedule cheaply.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from workbench.registry import SCHEDULES

LRFn = Callable[[int], float]


@dataclass(frozen=True)
class RunShape:
    epochs: int
    iters_per_epoch: int
    averaging_start: int | None = None  # epoch of the first window, if any

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch


def figure6_factor(epoch: int, horizon: int, ratio: float) -> float:
    """The paper's Figure 6 factor, as the reference code computes it.

    With t = epoch / H (epoch 0-based, fixed for the whole epoch): 1 for t <= 0.5,
    linear to ``ratio`` = C_l / C_h at t = 0.9, then ``ratio``. t = 0.5 is inclusive,
    so with H = 160 the high LR lasts 81 epochs (0..80).
    """
    t = epoch / horizon
    if t <= 0.5:
        return 1.0
    if t <= 0.9:
        return 1.0 - (1.0 - ratio) * (t - 0.5) / 0.4
    return ratio


def cyclic_lr(i: int, cycle: int, a1: float, a2: float) -> float:
    """The paper's cyclic LR for 1-based iteration i: alpha(i) = (1 - t) a1 + t a2 with
    t = (mod(i - 1, c) + 1) / c, so the last iteration of each cycle runs at a2."""
    t = ((i - 1) % cycle + 1) / cycle
    return (1.0 - t) * a1 + t * a2


@SCHEDULES.register("constant", help="lr for the whole run")
def _constant(spec, shape: RunShape) -> LRFn:
    return lambda it: spec.lr


@SCHEDULES.register("figure6", help="Paper Fig. 6: lr for half of H, linear to lr_end at 0.9 H, then lr_end (per epoch)")
def _figure6(spec, shape: RunShape) -> LRFn:
    horizon = spec.horizon or shape.epochs
    ratio = spec.lr_end / spec.lr
    ipe = shape.iters_per_epoch
    return lambda it: spec.lr * figure6_factor(it // ipe, horizon, ratio)


@SCHEDULES.register("cyclic", help="Paper's cyclic LR: lr -> lr_end linearly within each cycle of `cycle` iterations")
def _cyclic(spec, shape: RunShape) -> LRFn:
    c = spec.cycle or shape.iters_per_epoch
    return lambda it: cyclic_lr(it + 1, c, spec.lr, spec.lr_end)


@SCHEDULES.register("linear", help="lr -> lr_end linearly over the run (per iteration)")
def _linear(spec, shape: RunShape) -> LRFn:
    n = max(shape.total_iters - 1, 1)
    return lambda it: spec.lr + (spec.lr_end - spec.lr) * min(it / n, 1.0)


@SCHEDULES.register("cosine", help="lr -> lr_end along a half cosine over the run (per iteration)")
def _cosine(spec, shape: RunShape) -> LRFn:
    n = max(shape.total_iters - 1, 1)
    return lambda it: spec.lr_end + (spec.lr - spec.lr_end) * 0.5 * (1.0 + math.cos(math.pi * min(it / n, 1.0)))


@SCHEDULES.register("piecewise", help="Linear between [epoch, lr] points (per epoch); the last lr holds after")
def _piecewise(spec, shape: RunShape) -> LRFn:
    pts = sorted((float(e), float(v)) for e, v in spec.points) or [(0.0, spec.lr)]
    ipe = shape.iters_per_epoch

    def lr(it: int) -> float:
        e = it // ipe
        if e <= pts[0][0]:
            return pts[0][1]
        for (e0, v0), (e1, v1) in zip(pts, pts[1:]):
            if e <= e1:
                return v0 + (v1 - v0) * (e - e0) / (e1 - e0) if e1 > e0 else v1
        return pts[-1][1]

    return lr


def build_schedule(spec, shape: RunShape) -> LRFn:
    """The schedule for a run, with the SWA phase switch applied."""
    base = SCHEDULES.get(spec.name).obj(spec, shape)
    if spec.swa_phase == "none" or shape.averaging_start is None:
        return base
    first = shape.averaging_start * shape.iters_per_epoch
    if spec.swa_phase == "constant":
        return lambda it: base(it) if it < first else spec.swa_lr
    c = spec.swa_cycle or shape.iters_per_epoch
    return lambda it: base(it) if it < first else cyclic_lr(it - first + 1, c, spec.swa_lr, spec.swa_lr_min)


def per_epoch(fn: LRFn, shape: RunShape, where: str = "last") -> list[float]:
    """The LR at the first or last iteration of every epoch (for previews and logs)."""
    off = shape.iters_per_epoch - 1 if where == "last" else 0
    return [fn(e * shape.iters_per_epoch + off) for e in range(shape.epochs)]
