"""Flatness measures on problems with known answers: the power iteration recovers the top
eigenvalue of a quadratic, perturbations raise the loss only when they are not tiny, and the
sample spread equals a direct computation."""
import math

import numpy as np
import pytest
import torch

from workbench.analysis.flatness import (hessian_top_eigenvalue, loss_hvp, perturbation_sharpness, sample_spread,
                                         top_eigenvalue)


def quadratic(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T
    return (a + a.T) / 2


@pytest.mark.parametrize("eigs", [[7.0, 3.0, 1.0, 0.5, 0.1, 0.0], [2.0, 1.5, -5.0, 0.3]])
def test_power_iteration_recovers_the_top_eigenvalue_of_a_quadratic(eigs):
    a = quadratic(eigs)
    w = torch.randn(len(eigs), dtype=torch.float64, requires_grad=True)
    r = top_eigenvalue(loss_hvp(lambda: 0.5 * w @ a @ w, [w]), [w], iters=500, tol=1e-10)
    assert r.converged
    assert r.value == pytest.approx(max(eigs), rel=1e-3)  # the second case: dominant -5 is shifted away


def test_model_hessian_matches_the_quadratic_through_a_task():
    """A linear 'model' with squared loss through the task contract: H = X^T X / N."""
    torch.manual_seed(0)
    x = torch.randn(64, 5)

    class Task:
        device = torch.device("cpu")

        def loss(self, model, batch):
            out = model(batch)
            return 0.5 * (out ** 2).sum(1).mean(), 0, batch.shape[0]

    model = torch.nn.Linear(5, 1, bias=False)
    batches = [x[:40], x[40:]]  # unequal sizes: weighted by examples
    r = hessian_top_eigenvalue(Task(), model, batches, iters=300, tol=1e-10)
    want = torch.linalg.eigvalsh(x.T @ x / 64).max().item()
    assert r.value == pytest.approx(want, rel=1e-3)
    assert model.training  # mode restored


def test_perturbation_increase_is_zero_for_tiny_rho_and_positive_otherwise():
    a = quadratic([4.0, 2.0, 1.0, 0.5]).float()
    w = torch.nn.Parameter(torch.zeros(4))
    b = torch.nn.Parameter(torch.ones(3))  # a second "layer", nonzero norm
    w_min = torch.tensor([1.0, -2.0, 0.5, 3.0])

    def loss_fn():
        d = w - w_min
        return float(0.5 * d @ a @ d + ((b - 1) ** 2).sum())

    with torch.no_grad():
        w.copy_(w_min)
    before = [w.detach().clone(), b.detach().clone()]
    r = perturbation_sharpness(loss_fn, [w, b], rhos=(1e-7, 0.05, 0.2), directions=4, seed=3)
    assert r.base_loss == pytest.approx(0.0, abs=1e-9)
    assert abs(r.mean[0]) < 1e-9
    assert (r.increases[1:] > 0).all() and r.mean[2] > r.mean[1]
    # at a quadratic minimum the increase scales as rho^2
    assert r.mean[2] / r.mean[1] == pytest.approx(16.0, rel=1e-3)
    assert torch.equal(w, before[0]) and torch.equal(b, before[1])  # restored exactly
    # per-tensor normalisation: the step of each tensor has norm rho * ||w_tensor||
    seen = []
    perturbation_sharpness(lambda: seen.append((w.detach() - w_min).norm().item()) or 0.0, [w], rhos=(0.1,),
                           directions=1)
    assert seen[1] == pytest.approx(0.1 * w_min.norm().item(), rel=1e-5)


def test_sample_spread_equals_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    samples = [(w, k, {"a": torch.randn(3, 2, generator=g), "b": torch.randn(4, generator=g)})
               for w, n in ((1, 5), (2, 3)) for k in range(1, n + 1)]
    spread = sample_spread([(w, k, (lambda p=p: p)) if w == 2 else (w, k, p) for w, k, p in samples])
    assert [s.window for s in spread] == [1, 2] and [s.samples for s in spread] == [[1, 2, 3, 4, 5], [1, 2, 3]]
    for s in spread:
        flat = np.stack([np.concatenate([p["a"].numpy().ravel(), p["b"].numpy().ravel()])
                         for w, _, p in samples if w == s.window]).astype(np.float64)
        mean = flat.mean(0)
        d = np.linalg.norm(flat - mean, axis=1)
        np.testing.assert_allclose(s.distances, d, rtol=1e-12)
        assert s.variance == pytest.approx(np.mean(np.sum((flat - mean) ** 2, axis=1)), rel=1e-12)
        assert s.mean_norm == pytest.approx(np.linalg.norm(mean), rel=1e-12)
        assert math.isfinite(s.variance) and s.variance > 0
