"""GPU checks (skipped without CUDA): bf16 runs keep fp32 averages, and the averaging
update and the training step loop do not synchronise with the host per step."""

import pytest
import torch

import workbench
from workbench.engine.averaging import WeightAverage

from gpu_util import count_syncs  # tests/gpu_util.py

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]




def test_averaging_update_never_syncs_with_the_host():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Linear(64, 10)).cuda()
    avg = WeightAverage(model)
    assert count_syncs(lambda: [avg.add() for _ in range(20)]) == 0
    ema = WeightAverage(model.to(torch.bfloat16))
    assert count_syncs(lambda: [ema.add_ema(0.99) for _ in range(20)]) == 0
    assert ema.avg[0].dtype == torch.float32


def test_step_loop_syncs_a_bounded_number_of_times_per_epoch():
    """Host reads happen once per epoch (metrics), not once per step."""
    from workbench.engine.loop import Trainer
    from workbench.engine.run import build_task
    from workbench.presets import load_spec

    s = load_spec("quickstart", overrides=["device=cuda", "tracking.enabled=false", "budget.batch_size=16",
                                           "averaging.variant=none"])
    task, model = build_task(s, torch.device("cuda"))
    t = Trainer(s, task, model, precision="bf16")
    assert t.ipe >= 50
    t._train_epoch(0, None)  # warm-up (allocator, kernels)
    syncs = count_syncs(lambda: t._train_epoch(1, None))
    assert syncs <= 4, f"{syncs} host syncs in an epoch of {t.ipe} steps"


def test_quickstart_on_cuda_in_bf16():
    r = workbench.run("quickstart", overrides=["device=cuda", "tracking.enabled=false"])
    assert r.metrics["final/average_test_acc"] > 90
    assert all(v.dtype == torch.float32 for v in r.average_state_dict.values() if v.is_floating_point())
    assert all(v.device.type == "cuda" for v in r.average_state_dict.values())
