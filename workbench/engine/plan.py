"""Averaging variants as one mechanism: a plan of windows over the run.

A window [start, end) (0-based epochs) folds samples of the backbone into a running
average. Each window carries

* its **weighting**: ``equal`` (the running mean of its samples, SWA) or ``ema``
  (``avg <- decay * avg + (1 - decay) * w``); the first sample of either is copied;
* its **cadence**: ``every = 0``, one sample per epoch after the epoch's last optimizer
  step, or one sample every ``every`` iterations counted from the window's start
  (``averaging.cycle`` for equal windows, ``averaging.every`` for EMA).

At the end of a window with ``restart`` set, the backbone restarts from that window's
average (BN recomputed, optimizer state reset, the LR schedule continues). The run's
output average is the last window's.

=========  ==================================================================
variant    windows
=========  ==================================================================
none       none
swa        [start, E)
kswa       E - start split into k equal windows, restarting between them
dswa/tswa  kswa with k = 2 / 3
pswa       [start, start+P), [start+P, start+2P), ... to E (or to tail_start,
           then one plain window [tail_start, E)), restarting between them
ema        [start, E), ema(decay) weighting, a sample every ``every`` steps
=========  ==================================================================

A variant's default start (a fraction of the run) is registry meta of its builder
(``@AVERAGERS.register(..., default_start=0.25)``), read by :func:`default_start`.

Torch-free: forms preview plans, and the spec validates against them (through the
registry: ``AVERAGERS.get(variant).obj(averaging, epochs)`` is the builder).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

from workbench.registry import AVERAGERS

WEIGHTINGS = ("equal", "ema")
SWA_START = 0.75  # the default start of a variant registered without ``default_start`` (a plugin's SWA)


def sample_weight(weighting: str, decay: float, n: int) -> float:
    """The lerp weight of the sample that follows ``n`` samples in a window (n >= 1; a
    window's first sample is copied): 1 / (n + 1) for the ``equal`` mean, 1 - decay for
    an ``ema``. A Python float, so an update needs no host sync."""
    if weighting == "equal":
        return 1.0 / (n + 1)
    if weighting == "ema":
        return 1.0 - decay
    raise ValueError(f"window weighting: expected one of {WEIGHTINGS}, got {weighting!r}")


@dataclass(frozen=True)
class Window:
    """One averaging window. Fields are plain values: the run's start event sends
    ``window.__dict__`` as JSON."""

    index: int  # 0-based
    start: int  # first epoch of the window (0-based)
    end: int  # one past its last epoch
    restart: bool  # restart the backbone from this window's average at its end
    weighting: str = "equal"  # one of WEIGHTINGS
    decay: float = 0.0  # ema: the decay per sample
    every: int = 0  # a sample every `every` iterations from its start (0: once per epoch, after its last step)
    # The paper's numbered windows (SWA family): the `window` metric carries the number, and
    # averaging.keep_samples keeps their samples (artifacts w01_s001, ...). False for EMA, a
    # running average whose updates are not samples the paper studies.
    numbered: bool = True

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"window weighting: expected one of {WEIGHTINGS}, got {self.weighting!r}")

    @property
    def epochs(self) -> int:
        return self.end - self.start

    @property
    def label(self) -> str:
        """The weighting in words: ``equal`` or ``ema 0.999``."""
        return "equal" if self.weighting == "equal" else f"ema {self.decay:g}"

    def weight(self, n: int) -> float:
        """The lerp weight of the sample that follows ``n`` samples (:func:`sample_weight`)."""
        return sample_weight(self.weighting, self.decay, n)

    def samples_after_step(self, it: int, iters_per_epoch: int) -> bool:
        """Whether the weights after global iteration ``it`` (1-based: iterations done)
        are a sample, for a window sampling every ``every`` iterations."""
        return bool(self.every) and (it - self.start * iters_per_epoch) % self.every == 0

    @property
    def samples_at_epoch_end(self) -> bool:
        """One sample per epoch, the weights after the epoch's last step."""
        return not self.every


@dataclass(frozen=True)
class Plan:
    variant: str
    windows: tuple[Window, ...] = ()

    @property
    def averaging_start(self) -> Optional[int]:
        return min(w.start for w in self.windows) if self.windows else None

    @property
    def averages(self) -> bool:
        return bool(self.windows)

    def windows_at(self, epoch: int) -> tuple[Window, ...]:
        """Every window active in the 0-based ``epoch`` (one in today's plans; the loop
        does not assume it)."""
        return tuple(w for w in self.windows if w.start <= epoch < w.end)

    def window_at(self, epoch: int) -> Optional[Window]:
        active = self.windows_at(epoch)
        return active[0] if active else None


class PlanError(ValueError):
    """A plan that does not fit the run; the message names the field."""


def default_start(variant: str, epochs: int) -> Optional[int]:
    """The first averaging epoch of a variant when ``averaging.start`` is unset: its
    registry entry's ``default_start`` (a fraction of the run; None: no averaging),
    :data:`SWA_START` for an entry without one."""
    frac = AVERAGERS.get(variant).meta.get("default_start", SWA_START)
    if frac is None:
        return None
    return int(Fraction(str(frac)) * epochs)  # exact: 0.57 of 100 epochs is 57, not 56


def _start(avg, epochs: int) -> int:
    start = avg.start if avg.start is not None else default_start(avg.variant, epochs)
    if start >= epochs:
        raise PlanError(f"averaging.start: {start} must be before the end of the run (budget.epochs = {epochs})")
    return start


def _split(start: int, end: int, k: int, field: str, every: int) -> tuple[Window, ...]:
    n = end - start
    if n % k:
        raise PlanError(
            f"{field}: the averaging budget of {n} epochs ({start}..{end}) does not split into {k} equal windows"
        )
    size = n // k
    return tuple(Window(i, start + i * size, start + (i + 1) * size, i < k - 1, every=every) for i in range(k))


@AVERAGERS.register("none", help="The backbone alone (SGD or Adam)", default_start=None)
def _none(avg, epochs: int) -> Plan:
    return Plan("none")


@AVERAGERS.register("swa", help="SWA: one window from start to the end, equal-weight mean of the samples",
                    default_start=SWA_START)
def _swa(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    return Plan("swa", (Window(0, s, epochs, False, every=avg.cycle),))


def _kswa_k(avg, epochs: int, k: int, name: str, field: str) -> Plan:
    """``field`` is the one to name when the budget does not split: what the user can change."""
    return Plan(name, _split(_start(avg, epochs), epochs, k, field, avg.cycle))


@AVERAGERS.register("kswa", help="K-SWA: the SWA budget split into k windows, each restarting from the last average",
                    default_start=SWA_START)
def _kswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, avg.k, "kswa", "averaging.k")


@AVERAGERS.register("dswa", help="Double SWA (Algorithm 2): two SWA windows of equal length", default_start=SWA_START)
def _dswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, 2, "dswa", "averaging.start")


@AVERAGERS.register("tswa", help="Triple SWA (Algorithm 3): three SWA windows of equal length", default_start=SWA_START)
def _tswa(avg, epochs: int) -> Plan:
    return _kswa_k(avg, epochs, 3, "tswa", "averaging.start")


@AVERAGERS.register("pswa", help="Periodic SWA: windows of `period` epochs from an early start, each restarting from the last average",
                    default_start=0.25)
def _pswa(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    stop = avg.tail_start or epochs
    if avg.tail_start and not s < avg.tail_start < epochs:
        raise PlanError(f"averaging.tail_start: {avg.tail_start} must lie between averaging.start ({s}) and budget.epochs ({epochs})")
    windows = []
    a = s
    while a < stop:
        b = min(a + avg.period, stop)
        windows.append(Window(len(windows), a, b, True, every=avg.cycle))
        a = b
    if avg.tail_start:
        # The reference's undocumented extra: a plain SWA window after the last period,
        # starting from that period's average, never restarting.
        windows.append(Window(len(windows), stop, epochs, False, every=avg.cycle))
    else:
        last = windows[-1]
        windows[-1] = Window(last.index, last.start, last.end, False, every=avg.cycle)
    return Plan("pswa", tuple(windows))


@AVERAGERS.register("ema", help="Exponential moving average of the weights, every `every` steps from start",
                    default_start=0)
def _ema(avg, epochs: int) -> Plan:
    s = _start(avg, epochs)
    return Plan("ema", (Window(0, s, epochs, False, "ema", avg.decay, avg.every, numbered=False),))


def build_plan(avg, epochs: int) -> Plan:
    return AVERAGERS.get(avg.variant).obj(avg, epochs)
