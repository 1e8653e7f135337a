#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (run from the repository root).
# The machine has torch but not pydantic / tomli-w: carry their wheels in .whl/ (see the
# README's "GPU checks"). Tracking is off in every check (MLflow is not installed there).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== pytest (GPU-marked and image task tests)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_image_task.py 2>&1 | tee "$OUT/pytest.log" | tail -15
echo "== averaging update on CUDA"
timeout 60 python3 bench/averaging.py --device cuda --repeats 20 2>&1 | tee "$OUT/averaging_cuda.log"
echo "== one epoch: fast path vs DataLoader"
timeout 200 python3 bench/gpu_epoch.py 2>&1 | tee "$OUT/gpu_epoch.log"
echo "== image presets on CUDA"
timeout 120 python3 bench/gpu_image_checks.py 2>&1 | tee "$OUT/image_checks.log"
echo "== with torch.compile"
timeout 150 python3 bench/gpu_epoch.py --compile --models vgg16,wrn28_10 2>&1 | tee "$OUT/gpu_epoch_compile.log"
