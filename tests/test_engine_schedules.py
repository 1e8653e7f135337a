"""Learning-rate schedules: the paper's Figure 6 values, the cyclic formula, SWA phases."""
import math

import pytest

from workbench.engine.schedules import RunShape, build_schedule, cyclic_lr, figure6_factor, per_epoch
from workbench.spec import ScheduleSpec


def lr_fn(shape: RunShape, **kw):
    return build_schedule(ScheduleSpec(**kw), shape)


@pytest.mark.parametrize("epoch,expected", [(0, 0.05), (80, 0.05), (81, 0.05 * (1 - 0.8 * (81 / 160 - 0.5) / 0.4)),
                                            (100, 0.0375), (120, 0.025), (144, 0.01), (159, 0.01)])
def test_figure6_matches_the_reference_values(epoch, expected):
    ipe = 7
    fn = lr_fn(RunShape(160, ipe), name="figure6", lr=0.05, lr_end=0.01, horizon=160)
    # constant within the epoch: first and last iteration agree
    assert fn(epoch * ipe) == pytest.approx(expected, abs=1e-12)
    assert fn(epoch * ipe + ipe - 1) == pytest.approx(expected, abs=1e-12)


def test_figure6_horizon_defaults_to_the_run_length():
    assert figure6_factor(80, 160, 0.2) == 1.0  # t = 0.5 is inclusive: 81 epochs at C_h
    a = per_epoch(lr_fn(RunShape(160, 3), name="figure6", lr=0.05, lr_end=0.01), RunShape(160, 3))
    assert a[80] == 0.05 and a[100] == pytest.approx(0.0375) and a[145] == pytest.approx(0.01)


def test_cyclic_takes_the_sample_at_a2_at_the_end_of_each_cycle():
    c, a1, a2 = 5, 0.1, 0.01
    vals = [cyclic_lr(i, c, a1, a2) for i in range(1, 11)]
    assert vals[4] == pytest.approx(a2) and vals[9] == pytest.approx(a2)
    assert vals[0] == pytest.approx(0.8 * a1 + 0.2 * a2)  # t(1) = 1/c
    assert vals[5] == pytest.approx(vals[0])  # periodic
    fn = lr_fn(RunShape(4, 5), name="cyclic", lr=a1, lr_end=a2)  # cycle 0 = one epoch
    assert [fn(i) for i in range(10)] == pytest.approx(vals)


def test_linear_and_cosine_run_from_lr_to_lr_end_per_iteration():
    shape = RunShape(10, 10)
    lin = lr_fn(shape, name="linear", lr=1.0, lr_end=0.0)
    cos = lr_fn(shape, name="cosine", lr=1.0, lr_end=0.0)
    assert lin(0) == 1.0 and lin(99) == pytest.approx(0.0) and lin(33) == pytest.approx(1 - 33 / 99)
    assert cos(0) == 1.0 and cos(99) == pytest.approx(0.0, abs=1e-12)
    assert cos(int(99 / 2)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 99)))


def test_piecewise_follows_points_per_epoch():
    fn = lr_fn(RunShape(50, 2), name="piecewise", points=[[0, 1e-4], [20, 1e-4], [40, 1e-6], [50, 1e-6]])
    assert fn(20 * 2) == pytest.approx(1e-4)
    assert fn(30 * 2 + 1) == pytest.approx((1e-4 + 1e-6) / 2)
    assert fn(45 * 2) == pytest.approx(1e-6)


def test_swa_phase_switches_at_the_averaging_start():
    shape = RunShape(10, 4, averaging_start=6)
    const = lr_fn(shape, name="constant", lr=0.01, swa_phase="constant", swa_lr=0.05)
    assert const(6 * 4 - 1) == 0.01 and const(6 * 4) == 0.05 and const(39) == 0.05
    cyc = lr_fn(shape, name="constant", lr=0.01, swa_phase="cyclic", swa_lr=5e-5, swa_lr_min=5e-6)
    first = 6 * 4
    assert cyc(first - 1) == 0.01
    assert [cyc(first + j) for j in range(4)] == pytest.approx([cyclic_lr(j + 1, 4, 5e-5, 5e-6) for j in range(4)])
    assert cyc(first + 3) == pytest.approx(5e-6)  # sample at the end of the epoch, at a2


def test_no_swa_phase_without_averaging():
    fn = lr_fn(RunShape(10, 4, averaging_start=None), name="constant", lr=0.01, swa_phase="constant", swa_lr=0.5)
    assert fn(39) == 0.01
