"""The running averages: exactness against PyTorch's AveragedModel, fp32 accumulation,
EMA, buffer policies, state round trips."""
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from workbench.engine.averaging import WeightAverage


def small_net(bn: bool = True) -> nn.Module:
    layers = [nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)]
    if not bn:
        layers.pop(1)
    return nn.Sequential(*layers)


def perturb(model: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def test_running_mean_equals_averaged_model_fp32():
    torch.manual_seed(0)
    model = small_net()
    ours = WeightAverage(model)
    ref = AveragedModel(model)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        perturb(model, g)
        ours.add()
        ref.update_parameters(model)
    ref_params = dict(ref.module.named_parameters())
    worst = max((ours.avg[i] - ref_params[n]).abs().max().item() for i, n in enumerate(ours.names))
    assert worst < 1e-6
    assert ours.n == 25 and int(ref.n_averaged) == 25


def test_running_mean_is_the_exact_mean_of_the_samples():
    model = nn.Linear(4, 3)
    avg = WeightAverage(model)
    samples = []
    g = torch.Generator().manual_seed(2)
    for _ in range(7):
        perturb(model, g)
        samples.append(model.weight.detach().clone())
        avg.add()
    assert torch.allclose(avg.avg[0], torch.stack(samples).mean(0), atol=1e-6)


def test_fp32_accumulator_beats_a_bf16_running_mean_on_bf16_weights():
    g = torch.Generator().manual_seed(3)
    model = nn.Linear(256, 256).to(torch.bfloat16)
    avg = WeightAverage(model)
    naive = model.weight.detach().clone()  # bf16 running mean, as AveragedModel would keep it
    exact = torch.zeros(256, 256, dtype=torch.float64)
    n = 200
    for k in range(n):
        with torch.no_grad():
            model.weight.copy_((1.0 + 0.05 * torch.randn(256, 256, generator=g)).to(torch.bfloat16))
        w = model.weight.detach()
        exact += w.double()
        if k == 0:
            naive.copy_(w)
        else:
            naive.lerp_(w, 1.0 / (k + 1))
        avg.add()
    exact /= n
    err_ours = (avg.avg[0].double() - exact).abs().mean().item()
    err_bf16 = (naive.double() - exact).abs().mean().item()
    assert avg.avg[0].dtype == torch.float32
    assert err_ours < 1e-6
    assert err_bf16 > 100 * err_ours


def test_ema_update_rule_and_first_copy():
    model = nn.Linear(3, 2)
    avg = WeightAverage(model)
    w0 = model.weight.detach().clone()
    avg.add_ema(0.9)
    assert torch.equal(avg.avg[0], w0)
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.add_ema(0.9)
    assert torch.allclose(avg.avg[0], 0.9 * w0 + 0.1 * (w0 + 1.0), atol=1e-6)


def test_reset_starts_a_new_window():
    model = nn.Linear(3, 2)
    avg = WeightAverage(model)
    avg.add()
    with torch.no_grad():
        model.weight.fill_(5.0)
    avg.reset()
    avg.add()
    assert avg.n == 1 and torch.all(avg.avg[0] == 5.0)


def test_buffer_policies_never_divide_integer_buffers():
    model = small_net()
    model.train()
    avg = WeightAverage(model, buffers="average")
    names = set(avg.names)
    assert "1.running_mean" in names and "1.running_var" in names
    assert "1.num_batches_tracked" not in names  # integer: copied, never averaged
    model(torch.randn(4, 3, 8, 8))
    avg.add()
    model(torch.randn(4, 3, 8, 8) + 3)
    avg.add()
    target = small_net()
    avg.write_to(target, model)
    assert target[1].num_batches_tracked.item() == model[1].num_batches_tracked.item() == 2
    assert target[1].num_batches_tracked.dtype == torch.int64
    assert not torch.allclose(target[1].running_mean, model[1].running_mean)  # averaged, not copied
    copy = WeightAverage(model, buffers="copy")
    assert all(n.split(".")[-1] in ("weight", "bias") for n in copy.names)
    copy.add()
    copy.write_to(target, model)
    assert torch.equal(target[1].running_mean, model[1].running_mean)


def test_state_dict_round_trip():
    model = nn.Linear(3, 2)
    a = WeightAverage(model)
    a.add()
    with torch.no_grad():
        model.weight.mul_(3)
    a.add()
    b = WeightAverage(model)
    b.load_state_dict(a.state_dict())
    assert b.n == 2 and torch.equal(b.avg[0], a.avg[0])
    with pytest.raises(ValueError, match="does not match"):
        WeightAverage(nn.Linear(3, 3, bias=False)).load_state_dict(a.state_dict())


def test_write_to_refuses_an_empty_average():
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="no samples"):
        WeightAverage(model).write_to(nn.Linear(2, 2), model)
