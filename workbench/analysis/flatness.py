"""Is an average a wider optimum? Sharpness of a solution, and the spread of samples.

Three measures:

* **Top Hessian eigenvalue** of the train loss, by power iteration on Hessian-vector
  products (double backward through ``torch.autograd``). The model is in eval mode
  (BN uses its running statistics, dropout is off) and the loss is the mean over a
  fixed list of batches, so the operator is the same at every iteration. Power
  iteration finds the eigenvalue of largest *magnitude*; if that one is negative (a
  saddle direction dominates), a second iteration on H - lambda I finds the top
  algebraic one, which is what is reported.
* **Random-perturbation sharpness**: the mean increase of that loss at
  w + delta over random directions. Normalisation, per parameter tensor ("layer"):
  delta_l = rho * ||w_l|| * u_l / ||u_l||, u_l ~ N(0, I), so every tensor moves by
  the same *relative* amount and the whole step has norm rho * ||w||. Zero tensors
  (e.g. untrained biases) do not move; ``skip_1d`` also holds biases and BN affine
  weights fixed, as filter-normalised plots do. BN statistics are *not* recomputed
  at w + delta. Direction j is drawn from a CPU generator seeded with ``seed + j``,
  and reused for every rho, so the rho curve of one direction is a line in weight
  space and adding directions never changes the earlier ones.
* **Sample spread** (the paper's variance-reduction view of the WA operation): with
  kept samples, each sample's L2 distance to its window's mean, and the window's
  variance = the mean squared distance to the mean (1/n, i.e. the trace of the
  samples' population covariance). Computed in float64, two passes, one sample in
  memory at a time when the samples are given as loaders.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from workbench.analysis.runs import AnalysisError

Vec = list[torch.Tensor]


def _dot(a: Vec, b: Vec) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


def _norm(a: Vec) -> float:
    return math.sqrt(_dot(a, a))


# ----------------------------------------------------------------------------- Hessian


@dataclass
class EigenResult:
    value: float
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list)


def power_iteration(hvp: Callable[[Vec], Vec], like: Sequence[torch.Tensor], *, iters: int = 100,
                    tol: float = 1e-4, seed: int = 0) -> EigenResult:
    """Dominant eigenvalue (largest magnitude) of the symmetric operator ``hvp``, from a
    random unit start (CPU generator seeded with ``seed``). Stops when the Rayleigh
    quotient changes by less than ``tol`` relative, or after ``iters`` products."""
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float32).to(device=p.device, dtype=p.dtype) for p in like]
    n = _norm(v)
    v = [x / n for x in v]
    hist: list[float] = []
    for i in range(iters):
        hv = hvp(v)
        lam = _dot(v, hv)  # Rayleigh quotient of the unit v: a host sync per iteration, fine here
        hist.append(lam)
        norm = _norm(hv)
        if norm == 0.0:
            return EigenResult(0.0, i + 1, True, hist)
        v = [x / norm for x in hv]
        if i and abs(lam - hist[-2]) <= tol * max(abs(lam), 1e-12):
            return EigenResult(lam, i + 1, True, hist)
    return EigenResult(hist[-1], iters, False, hist)


def top_eigenvalue(hvp: Callable[[Vec], Vec], like: Sequence[torch.Tensor], **kw) -> EigenResult:
    """Top (algebraic) eigenvalue: power iteration, shifted once if the dominant one is negative."""
    r = power_iteration(hvp, like, **kw)
    if r.value >= 0:
        return r
    shift = r.value  # H - shift I has eigenvalues >= 0; its dominant one is lambda_max - shift
    s = power_iteration(lambda v: [h - shift * x for h, x in zip(hvp(v), v)], like, **kw)
    history = r.history + [h + shift for h in s.history]
    return EigenResult(s.value + shift, r.iterations + s.iterations, s.converged, history)


def loss_hvp(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]) -> Callable[[Vec], Vec]:
    """Hessian-vector products of a scalar ``loss_fn()`` w.r.t. ``params`` (double backward)."""
    params = list(params)

    def hvp(v: Vec) -> Vec:
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        dot = sum((g * x).sum() for g, x in zip(grads, v))
        return [h.detach() for h in torch.autograd.grad(dot, params)]

    return hvp


def model_hvp(task, model: torch.nn.Module, batches: Sequence[Any]) -> Callable[[Vec], Vec]:
    """HVP of the mean train loss over ``batches`` (weighted by examples), one batch's
    graph at a time. Call with the model in eval mode (see :func:`hessian_top_eigenvalue`)."""
    params = [p for p in model.parameters() if p.requires_grad]

    def hvp(v: Vec) -> Vec:
        total = [torch.zeros_like(p) for p in params]
        count = 0
        for b in batches:
            loss, _, n = task.loss(model, b)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * x).sum() for g, x in zip(grads, v))
            for acc, h in zip(total, torch.autograd.grad(dot, params)):
                acc.add_(h.detach(), alpha=float(n))
            count += int(n)
        return [t / count for t in total]

    return hvp


def hessian_top_eigenvalue(task, model: torch.nn.Module, batches: Sequence[Any], **kw) -> EigenResult:
    """Top Hessian eigenvalue of the mean train loss over fixed ``batches``, model in eval
    mode (restored after). ``kw``: ``iters``, ``tol``, ``seed`` of :func:`power_iteration`."""
    was = model.training
    model.eval()
    try:
        params = [p for p in model.parameters() if p.requires_grad]
        return top_eigenvalue(model_hvp(task, model, batches), params, **kw)
    finally:
        model.train(was)


# ----------------------------------------------------------------------------- perturbations


@dataclass
class PerturbationResult:
    """``increases[i, j]``: loss(w + delta_j(rho_i)) - loss(w)."""

    rhos: np.ndarray
    base_loss: float
    increases: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.increases.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        """Sample std over directions (ddof=1; nan with one direction)."""
        if self.increases.shape[1] < 2:
            return np.full(len(self.rhos), np.nan)
        return self.increases.std(axis=1, ddof=1)


@torch.no_grad()
def perturbation_sharpness(loss_fn: Callable[[], float], params: Sequence[torch.Tensor],
                           rhos: Sequence[float] = (0.01, 0.05, 0.1), *, directions: int = 5, seed: int = 0,
                           skip_1d: bool = False) -> PerturbationResult:
    """Loss increase under random per-tensor-normalised perturbations (module docstring).
    ``params`` are modified in place and restored exactly afterwards, also on error."""
    params = list(params)
    base = float(loss_fn())
    saved = [p.detach().clone() for p in params]
    inc = np.zeros((len(rhos), directions))
    try:
        for j in range(directions):
            gen = torch.Generator().manual_seed(seed + j)
            dirs = []
            for p in saved:
                u = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(device=p.device, dtype=p.dtype)
                scale = p.double().norm().item() / max(u.double().norm().item(), 1e-30)
                dirs.append(None if (skip_1d and p.dim() <= 1) or scale == 0.0 else u * scale)
            for i, rho in enumerate(rhos):
                for p, w, d in zip(params, saved, dirs):
                    p.copy_(w if d is None else w + rho * d)
                inc[i, j] = float(loss_fn()) - base
    finally:
        for p, w in zip(params, saved):
            p.copy_(w)
    return PerturbationResult(np.asarray(rhos, dtype=float), base, inc)


# ----------------------------------------------------------------------------- samples


@dataclass
class WindowSpread:
    window: int
    samples: list[int]  # sample numbers k (1-based)
    distances: np.ndarray  # ||sample_k - window mean||
    variance: float  # mean squared distance to the mean (1/n)
    mean_norm: float  # ||window mean||


def sample_spread(samples: Sequence[tuple[int, int, Any]]) -> list[WindowSpread]:
    """Per window, each sample's distance to the window's mean and the variance; see the
    module docstring. ``samples``: ``(window, k, params)`` with ``params`` a dict of
    tensors or a zero-argument loader of one (:func:`~workbench.analysis.runs.load_samples`)."""
    get = lambda p: p() if callable(p) else p  # noqa: E731
    out = []
    for w in dict.fromkeys(s[0] for s in samples):
        members = [s for s in samples if s[0] == w]
        mean: Optional[dict[str, torch.Tensor]] = None
        for _, _, p in members:  # pass 1: the mean, in float64
            params = get(p)
            if mean is None:
                mean = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in params.items()}
            for k, v in params.items():
                mean[k] += v.detach().cpu().double()
        mean = {k: v / len(members) for k, v in mean.items()}
        dist = []
        for _, _, p in members:  # pass 2: distances
            params = get(p)
            dist.append(math.sqrt(sum(float(((params[k].detach().cpu().double() - m) ** 2).sum())
                                      for k, m in mean.items())))
        d = np.array(dist)
        norm = math.sqrt(sum(float((m ** 2).sum()) for m in mean.values()))
        out.append(WindowSpread(int(w), [int(s[1]) for s in members], d, float(np.mean(d ** 2)), norm))
    return out


# ----------------------------------------------------------------------------- a run


@dataclass
class FlatnessReport:
    run_id: str
    which: str
    examples: int
    train_loss: float
    hessian: Optional[EigenResult] = None
    perturbation: Optional[PerturbationResult] = None
    spread: Optional[list[WindowSpread]] = None

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: ``flatness/<which>/...`` and ``flatness/samples/wNN_...``."""
        p = f"flatness/{self.which}"
        out = {f"{p}/train_loss": self.train_loss}
        if self.hessian is not None:
            out[f"{p}/hessian_top"] = self.hessian.value
        if self.perturbation is not None:
            for rho, m in zip(self.perturbation.rhos, self.perturbation.mean):
                out[f"{p}/perturb_rho{rho:g}"] = float(m)
        for s in self.spread or []:
            out[f"flatness/samples/w{s.window:02d}_variance"] = s.variance
            out[f"flatness/samples/w{s.window:02d}_mean_distance"] = float(s.distances.mean())
        return out

    def to_json(self) -> str:
        def conv(o):
            if isinstance(o, np.ndarray):
                return o.tolist()
            raise TypeError(type(o))

        return json.dumps(asdict(self), default=conv, indent=1)

    def summary(self) -> str:
        lines = [f"run {self.run_id} ({self.which}), train loss over {self.examples} examples: {self.train_loss:.4f}"]
        if self.hessian is not None:
            h = self.hessian
            lines.append(f"top Hessian eigenvalue: {h.value:.4g} ({h.iterations} HVPs, "
                         f"{'converged' if h.converged else 'NOT converged'})")
        if self.perturbation is not None:
            pr = self.perturbation
            for rho, m, s in zip(pr.rhos, pr.mean, pr.std):
                lines.append(f"loss increase at rho={rho:g}: {m:.4g} ± {s:.2g} "
                             f"over {pr.increases.shape[1]} directions")
        for s in self.spread or []:
            lines.append(f"window {s.window}: {len(s.samples)} samples, variance {s.variance:.4g}, "
                         f"distance to the mean {s.distances.mean():.4g} (max {s.distances.max():.4g})")
        return "\n".join(lines)


def flatness_of_run(
    run_id: str,
    which: str = "average",
    *,
    uri: Optional[str] = None,
    device: str = "auto",
    batches: int = 4,
    batch_size: Optional[int] = None,
    iters: int = 50,
    tol: float = 1e-3,
    rhos: Sequence[float] = (0.01, 0.05, 0.1),
    directions: int = 5,
    seed: int = 0,
    hessian: bool = True,
    perturb: bool = True,
    samples: str | bool = "auto",
    log: bool = False,
) -> FlatnessReport:
    """All three measures for one logged run's solution (``average`` or ``backbone``).

    The loss is over the first ``batches`` batches (of ``batch_size``, default the run's
    eval batch size) of one unaugmented, seeded pass over the training set (the same
    examples every call). ``samples``: ``auto`` uses the kept samples when the run has
    them. ``log``: the :meth:`FlatnessReport.metrics` go into the run (step 0) and the
    report into ``analysis/flatness_<which>.json``."""
    import itertools

    from workbench.analysis.interpolate import evaluate_batches, train_eval_task
    from workbench.analysis.runs import load_run_spec, load_samples, load_weights, log_analysis
    from workbench.engine.run import build_task, resolve_device

    spec = load_run_spec(run_id, uri)
    dev = resolve_device(device)
    task, model = build_task(spec, dev)
    model.load_state_dict(load_weights(run_id, which, uri, map_location=dev))
    model.eval()  # every measure uses the solution's BN statistics; a train-mode forward would change them
    plain = train_eval_task(spec, dev, batch_size)
    fixed = list(itertools.islice(plain.train_batches(0), batches))
    if not fixed:
        raise AnalysisError(f"run {run_id}: no training batches")
    loss_fn = lambda: evaluate_batches(plain, model, fixed)[0]  # noqa: E731
    base = loss_fn()
    with torch.no_grad():
        examples = sum(int(plain.loss(model, b)[2]) for b in fixed)
    report = FlatnessReport(run_id, which, examples, base)
    if hessian:
        report.hessian = hessian_top_eigenvalue(plain, model, fixed, iters=iters, tol=tol, seed=seed)
    if perturb:
        report.perturbation = perturbation_sharpness(loss_fn, [p for p in model.parameters() if p.requires_grad],
                                                     rhos, directions=directions, seed=seed)
    if samples:
        try:
            report.spread = sample_spread(load_samples(run_id, uri, lazy=True))
        except AnalysisError:
            if samples != "auto":
                raise
    if log:
        log_analysis(run_id, metrics=report.metrics(), files={f"flatness_{which}.json": report.to_json()}, uri=uri)
    return report

