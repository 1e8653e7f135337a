"""Running averages of a module's weights: equal-weight (SWA windows) and EMA.

Engineering choices (see ../shared/research/perf_style.md A2):

* The average is a weights-only fp32 shadow (no deep copy of the module), so it
  stays exact for bf16 / fp16 weights: a 200-sample bf16 running mean is off by
  about 4x the statistical error it is meant to estimate.
* Tensor lists are collected once; an update is one ``torch._foreach_lerp_``
  over them (plus one ``_foreach_copy_`` cast when the weights are not fp32),
  whatever the window's weighting (equal mean or EMA: only the weight differs).
* The sample count lives on the host as a Python int, so the weight 1/(n+1) (or
  1 - decay) is a Python float: no device-to-host sync per update
  (``AveragedModel`` reads its ``n_averaged`` buffer on the host every update).
* Buffers follow an explicit policy: ``recompute`` (BN statistics recomputed
  for the average by :mod:`workbench.engine.bn`; other buffers copied from the
  backbone), ``average`` (float buffers averaged like parameters), ``copy``
  (all buffers copied from the backbone). Integer buffers (``num_batches_tracked``)
  are always copied, never divided.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.engine.plan import sample_weight

_BUFFER_POLICIES = ("recompute", "average", "copy")


class WeightAverage:
    """fp32 running average of a module's parameters (and, by policy, float buffers).

    ``update(weighting, decay)`` folds the module's current weights in with a plan
    window's weighting: the first update of a window copies, each later one is
    ``avg <- avg + weight * (w - avg)`` (weight 1 / (n + 1) for the equal mean,
    1 - decay for an EMA). ``add()`` and ``add_ema(decay)`` are shorthands for it.
    ``reset()`` starts a new window. ``write_to(module)`` puts the average (and the
    policy's buffers) into a module of the same structure.
    """

    def __init__(self, module: nn.Module, buffers: str = "recompute"):
        if buffers not in _BUFFER_POLICIES:
            raise ValueError(f"averaging.buffers: expected one of {_BUFFER_POLICIES}, got {buffers!r}")
        self.policy = buffers
        names, tensors = [], []
        for name, p in module.named_parameters():
            names.append(name)
            tensors.append(p)
        if buffers == "average":
            for name, b in module.named_buffers():
                if b.is_floating_point():
                    names.append(name)
                    tensors.append(b)
        self.names: list[str] = names
        self._src: list[torch.Tensor] = [t.detach() for t in tensors]
        self.avg: list[torch.Tensor] = [torch.zeros_like(t, dtype=torch.float32) for t in self._src]
        # Casting copies for low-precision weights (lerp needs matching dtypes).
        self._needs_cast = any(t.dtype != torch.float32 for t in self._src)
        self._scratch = [torch.empty_like(a) for a in self.avg] if self._needs_cast else None
        self.n = 0  # samples in the current window (host int: no sync)

    # -- updates -----------------------------------------------------------------
    def _current(self) -> list[torch.Tensor]:
        if not self._needs_cast:
            return self._src
        torch._foreach_copy_(self._scratch, self._src)
        return self._scratch

    @torch.no_grad()
    def update(self, weighting: str = "equal", decay: float = 0.0) -> None:
        """Fold the current weights in with a window's weighting (``equal`` mean, or
        ``ema`` with ``decay``): copied on the window's first update, else one
        ``_foreach_lerp_`` with :func:`~workbench.engine.plan.sample_weight`, a host
        float from the host count ``n`` (no device sync)."""
        cur = self._current()
        if self.n == 0:
            torch._foreach_copy_(self.avg, cur)
        else:
            torch._foreach_lerp_(self.avg, cur, sample_weight(weighting, decay, self.n))
        self.n += 1

    def add(self) -> None:
        """``update()``: fold the current weights into the equal-weight mean."""
        self.update()

    def add_ema(self, decay: float) -> None:
        """``update("ema", decay)``: ``avg <- decay * avg + (1 - decay) * w``; the first update copies."""
        self.update("ema", decay)

    def reset(self) -> None:
        """Start a new window: the next ``add`` copies."""
        self.n = 0

    # -- reading -----------------------------------------------------------------
    @torch.no_grad()
    def write_to(self, target: nn.Module, backbone: nn.Module) -> None:
        """Load the average into ``target`` (same structure as the backbone).

        Buffers not averaged are copied from ``backbone``; under the
        ``recompute`` policy the caller must then recalibrate BN statistics.
        """
        if self.n == 0:
            raise RuntimeError("the average has no samples yet")
        tparams = dict(target.named_parameters())
        tbufs = dict(target.named_buffers())
        dst = [tparams[n] if n in tparams else tbufs[n] for n in self.names]
        torch._foreach_copy_(dst, self.avg)
        averaged = set(self.names)
        for name, b in backbone.named_buffers():
            if name not in averaged:
                tbufs[name].copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "policy": self.policy, "names": list(self.names), "avg": [a.clone() for a in self.avg]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["names"] != self.names:
            raise ValueError("averager state does not match this model's tensors")
        torch._foreach_copy_(self.avg, state["avg"])
        self.n = int(state["n"])

    def averaged_state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged tensors by name (fp32, detached copies)."""
        return {n: a.detach().clone() for n, a in zip(self.names, self.avg)}
