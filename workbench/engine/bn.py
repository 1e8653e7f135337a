"""BatchNorm recalibration for averaged weights, through the task's own forward.

An average of weights has no BN statistics of its own: averaging the backbone's
running statistics is wrong, so they are recomputed on the training data.
Two estimators:

``reference``  what ZJLAB-AMMI/PSWA and timgaripov/swa compute: per batch,
               momentum b / (n + b), so the result is the size-weighted mean of
               per-batch means and of per-batch *unbiased* variances (not the
               variance of the whole set).
``pooled``     the exact mean and unbiased variance of the layer's input over
               all rows of all batches (accumulated in float64).

"Rows" are what BN normalises over (N for BN1d on (N, C), N*H*W for BN2d): for
fixed-size images this weights batches by their size, exactly as the reference;
for graph batches it weights by nodes. The pass runs in train mode like the
reference (dropout active) and goes through ``forward(model, batch)``, so dict
and graph batches work (``torch.optim.swa_utils.update_bn`` only calls
``model(batch[0])``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def bn_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def _rows(x: torch.Tensor) -> int:
    return x.numel() // x.shape[1]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    forward: Callable[[nn.Module, Any], Any],
    estimator: str = "reference",
    max_batches: int = 0,
) -> bool:
    """Recompute the running statistics of every BN layer of ``model``.

    Returns False (and does nothing) when the model has no BN layer. The
    module's train/eval mode, BN momenta and ``num_batches_tracked`` counters
    are restored afterwards.
    """
    layers = bn_layers(model)
    if not layers:
        return False
    if estimator not in ("reference", "pooled"):
        raise ValueError(f"averaging.bn_estimator: unknown estimator {estimator!r}")
    was_training = model.training
    momenta = [bn.momentum for bn in layers]
    counters = [bn.num_batches_tracked.clone() for bn in layers]
    hooks = []
    seen = [0] * len(layers)
    stats: list[list[Any]] = [[0, None, None] for _ in layers]  # count, sum, sumsq (float64)

    for i, bn in enumerate(layers):
        if estimator == "reference":
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)

            def pre(mod, inp, i=i):
                b = _rows(inp[0])
                seen[i] += b
                mod.momentum = b / seen[i]  # first batch: 1.0, i.e. a plain copy

        else:
            bn.momentum = 0.0  # leave running stats alone during the pass

            def pre(mod, inp, i=i):
                x = inp[0].detach()
                xt = x.transpose(0, 1).reshape(x.shape[1], -1).double()
                s, ss = xt.sum(1), (xt * xt).sum(1)
                st = stats[i]
                st[0] += xt.shape[1]
                st[1] = s if st[1] is None else st[1] + s
                st[2] = ss if st[2] is None else st[2] + ss

        hooks.append(bn.register_forward_pre_hook(pre))

    model.train()
    try:
        for j, batch in enumerate(batches):
            if max_batches and j >= max_batches:
                break
            forward(model, batch)
    finally:
        for h in hooks:
            h.remove()
        for bn, m, c in zip(layers, momenta, counters):
            bn.momentum = m
            bn.num_batches_tracked.copy_(c)
        model.train(was_training)

    if estimator == "pooled":
        for bn, (count, s, ss) in zip(layers, stats):
            if not count:
                continue
            mean = s / count
            var = (ss - count * mean * mean) / max(count - 1, 1)
            bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
            bn.running_var.copy_(var.clamp_min(0).to(bn.running_var.dtype))
    return True
