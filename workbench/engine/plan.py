"""Averaging variants as one mechanism: a plan of windows over the run.

A window [start, end) (0-based epochs) takes samples of the backbone (one per
epoch after its last optimizer step, or one every ``cycle`` iterations) into an
equal-weight running mean. At the end of a window with ``restart`` set, the
backbone restarts from that window's average (BN recomputed, optimizer state
reset, the LR schedule continues). The run's output average is the last
window's. EMA needs no windows.

=========  ==================================================================
variant    windows
=========  ==================================================================
none       none
swa        [start, E)
kswa       E - start split into k equal windows, restarting between them
dswa/tswa  kswa with k = 2 / 3
pswa       [start, start+P), [start+P, start+2P), ... to E (or to tail_start,
           then one plain window [tail_start, E)), restarting between them
ema        none; an exponential average from ``start``, every ``every`` steps
=========  ==================================================================

Torch-free: forms preview plans, and the spec validates against them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from workbench.registry import AVERAGERS


@dataclass(frozen=True)
class Window:
    index: int  # 0-based
    start: int  # first epoch of the window (0-based)
    end: int  # one past its last epoch
    restart: bool  # restart the backbone from this window's average at its end

    @property
    def epochs(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class EmaConfig:
    decay: float
    every: int
    start: int  # first epoch whose steps update the EMA


@dataclass(frozen=True)
class Plan:
    variant: str
    windows: tuple[Window, ...] = ()
    ema: Optional[EmaConfig] = None
    cycle: int = 0  # sample every c iterations inside a window (0 = once per epoch)

    @property
    def averaging_start(self) -> Optional[int]:
        if self.windows:
            return self.windows[0].start
        return self.ema.start if self.ema else None

    @property
    def averages(self) -> bool:
        return bool(self.windows) or self.ema is not None

    def window_at(self, epoch: int) -> Optional[Window]:
        for w in self.windows:
            if w.start <= epoch < w.end:
                return w
        return None


class PlanError(ValueError):
    """A plan that does not fit the run; the message names the field."""


def default_start(variant: str, epochs: int) -> Optional[int]:
    if variant in ("none",):
        return None
    if variant == "pswa":
        return epochs // 4
    if variant == "ema":
        return 0
    return (epochs * 3) // 4


def _start(avg, epochs: int) -> int:
    start = avg.start if avg.start is not None else default_start(avg.variant, epochs)
    if start >= epochs:
        raise PlanError(f"averaging.start: {start} must be before the end of the run (budget.epochs = {epochs})")
    return start


def _split(start: int, end: int, k: int, field: str) -> tuple[Window, ...]:
    n = end - start
    if n % k:
        raise PlanError(
            f"{field}: the averaging budget of {n} epochs ({start}..{end}) does not split into {k} equal windows"
        )
    size = n // k
    return tuple(Window(i, start + i * size, start + (i + 1) * size, i < k - 1) for i in range(k))


@AVERAGERS.register("none", help="The backbone alone (SGD or Adam)")
def _none(avg, epochs: int) -> Plan:
    return Plan("none")


@AVERAGERS.register("swa", help="SWA: one window from start to the end, equal-weight mean of the samples")
def _swa(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    return Plan("swa", (Window(0, s, epochs, False),), cycle=avg.cycle)


def _kswa_k(avg, epochs: int, k: int, name: str) -> Plan:
    s = _start(avg, epochs)
    return Plan(name, _split(s, epochs, k, "averaging.k" if name == "kswa" else "averaging.start"), cycle=avg.cycle)


@AVERAGERS.register("kswa", help="K-SWA: the SWA budget split into k windows, each restarting from the last average")
def _kswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, avg.k, "kswa")


@AVERAGERS.register("dswa", help="Double SWA (Algorithm 2): two SWA windows of equal length")
def _dswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, 2, "dswa")


@AVERAGERS.register("tswa", help="Triple SWA (Algorithm 3): three SWA windows of equal length")
def _tswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, 3, "tswa")


@AVERAGERS.register("pswa", help="Periodic SWA: windows of `period` epochs from an early start, each restarting from the last average")
def _pswa(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    stop = avg.tail_start or epochs
    if avg.tail_start and not s < avg.tail_start < epochs:
        raise PlanError(f"averaging.tail_start: {avg.tail_start} must lie between averaging.start ({s}) and budget.epochs ({epochs})")
    windows = []
    a = s
    while a < stop:
        b = min(a + avg.period, stop)
        windows.append(Window(len(windows), a, b, True))
        a = b
    if avg.tail_start:
        # The reference's undocumented extra: a plain SWA window after the last period,
        # starting from that period's average, never restarting.
        windows.append(Window(len(windows), stop, epochs, False))
    else:
        last = windows[-1]
        windows[-1] = Window(last.index, last.start, last.end, False)
    return Plan("pswa", tuple(windows), cycle=avg.cycle)


@AVERAGERS.register("ema", help="Exponential moving average of the weights, every `every` steps from start")
def _ema(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    return Plan("ema", ema=EmaConfig(avg.decay, avg.every, s))


def build_plan(avg, epochs: int) -> Plan:
    return AVERAGERS.get(avg.variant).obj(avg, epochs)


def check_plan(spec) -> None:
    """Validate and resolve a RunSpec's plan: fills ``averaging.start`` with the
    resolved epoch so the saved spec says what ran. Raises PlanError (a ValueError)."""
    plan = build_plan(spec.averaging, spec.budget.epochs)
    start = plan.averaging_start
    if spec.averaging.start is None and start is not None:
        spec.averaging.start = start
