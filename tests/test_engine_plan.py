"""Averaging plans: window boundaries of every variant, and the errors for plans that do not fit."""
import pytest

from workbench.engine.plan import Window, build_plan
from workbench.spec import AveragingSpec, SpecError, validate


def plan(epochs, **kw):
    return build_plan(AveragingSpec(**kw), epochs)


def test_swa_is_one_window_to_the_end():
    p = plan(100, variant="swa", start=60)
    assert p.windows == (Window(0, 60, 100, False),)
    assert p.window_at(59) is None and p.window_at(60).index == 0 and p.window_at(99).index == 0


def test_dswa_tswa_split_the_same_budget_into_equal_windows_with_restarts():
    d = plan(90, variant="dswa", start=30)
    assert [(w.start, w.end, w.restart) for w in d.windows] == [(30, 60, True), (60, 90, False)]
    t = plan(90, variant="tswa", start=30)
    assert [(w.start, w.end, w.restart) for w in t.windows] == [(30, 50, True), (50, 70, True), (70, 90, False)]
    k = plan(90, variant="kswa", start=30, k=6)
    assert [w.epochs for w in k.windows] == [10] * 6 and sum(w.restart for w in k.windows) == 5


def test_pswa_paper_setting_gives_six_windows_of_twenty():
    p = plan(160, variant="pswa", start=40, period=20)
    assert [(w.start, w.end) for w in p.windows] == [(40, 60), (60, 80), (80, 100), (100, 120), (120, 140), (140, 160)]
    assert [w.restart for w in p.windows] == [True] * 5 + [False]


def test_pswa_tail_is_an_explicit_option():
    p = plan(250, variant="pswa", start=40, period=20, tail_start=160)
    assert len(p.windows) == 7
    assert p.windows[-2] == Window(5, 140, 160, True)  # the last period restarts into the tail
    assert p.windows[-1] == Window(6, 160, 250, False)


def test_pswa_last_window_may_be_partial():
    p = plan(50, variant="pswa", start=10, period=15)
    assert [(w.start, w.end) for w in p.windows] == [(10, 25), (25, 40), (40, 50)]


def test_ema_is_one_window_with_ema_weighting_and_a_step_cadence():
    p = plan(20, variant="ema", start=5, decay=0.9, every=2)
    (w,) = p.windows
    assert (w.start, w.end, w.restart, w.weighting, w.decay, w.every) == (5, 20, False, "ema", 0.9, 2)
    assert p.averaging_start == 5 and w.label == "ema 0.9" and not w.numbered  # no `window` metric
    assert w.weight(1) == w.weight(7) == 1.0 - 0.9
    # samples after its 2nd, 4th, ... step (3 iterations per epoch: its first is global step 16)
    assert [it for it in range(16, 22) if w.samples_after_step(it, 3)] == [17, 19, 21]
    assert not w.samples_at_epoch_end


def test_equal_windows_sample_once_per_epoch_or_every_cycle_iterations():
    (w,) = plan(10, variant="swa", start=6).windows
    assert w.weighting == "equal" and w.samples_at_epoch_end and [w.weight(n) for n in (1, 3)] == [1 / 2, 1 / 4]
    assert all(w.every == 4 and not w.samples_at_epoch_end for w in plan(10, variant="dswa", start=6, cycle=4).windows)


def test_default_start_is_registry_meta_of_the_variant():
    from workbench.engine.plan import default_start
    from workbench.registry import AVERAGERS

    assert [AVERAGERS.get(v).meta["default_start"] for v in ("swa", "kswa", "pswa", "ema", "none")] == [
        0.75, 0.75, 0.25, 0, None]
    assert (default_start("swa", 90), default_start("pswa", 90), default_start("ema", 90)) == (67, 22, 0)
    assert default_start("none", 90) is None
    AVERAGERS.register("test_late_swa", help="SWA from 57 % of the run", default_start=0.57)(
        AVERAGERS.get("swa").obj)
    try:
        assert default_start("test_late_swa", 100) == 57  # exact, not int(0.57 * 100) == 56
        spec = validate({"averaging": {"variant": "test_late_swa"}, "budget": {"epochs": 100}})
        assert spec.averaging.start == 57
    finally:
        AVERAGERS.unregister("test_late_swa")


def test_unequal_split_is_rejected_naming_the_field():
    with pytest.raises(SpecError, match=r"^averaging\.k: .*61 epochs.*2 equal windows"):
        validate({"averaging": {"variant": "kswa", "k": 2, "start": 29}, "budget": {"epochs": 90}})


def test_start_after_the_end_is_rejected():
    with pytest.raises(SpecError, match=r"^averaging\.start: 90 must be before the end"):
        validate({"averaging": {"variant": "swa", "start": 90}, "budget": {"epochs": 90}})


def test_default_start_is_resolved_into_the_spec():
    spec = validate({"averaging": {"variant": "swa"}, "budget": {"epochs": 40}})
    assert spec.averaging.start == 30
    spec = validate({"averaging": {"variant": "pswa", "period": 5}, "budget": {"epochs": 40}})
    assert spec.averaging.start == 10
