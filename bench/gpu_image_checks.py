"""Device checks for the image experiments: smoke presets on CUDA, deterministic repeats, copies and syncs of the data path.

Run by bench/gpu_checks.sh on a GPU machine; prints one line per check."""
import os, sys, time
import torch
import workbench

dev = os.environ.get("DEV", "cuda")
base = ["tracking.enabled=false", f"device={dev}"]

def run(name, extra=()):
    t = time.time()
    try:
        r = workbench.run(name, scale="smoke", overrides=base + list(extra))
    except Exception as err:  # report and go on with the other checks
        print(f"{name} {' '.join(extra)}: FAILED {type(err).__name__}: {err}", flush=True)
        return None
    fin = {k: round(v, 3) for k, v in r.metrics.items()}
    print(f"{name} {' '.join(extra)}: {time.time() - t:.1f} s {fin}", flush=True)
    return r

for name in ("table4", "fig9", "pswa-vs-sgd"):
    run(name)
run("ablation-imagenet", ["dataset.options={fake = 64, fake_classes = 10, crop = 32, resize = 36, workers = 2}"])
a = run("pswa-vs-sgd", ["deterministic=true"])
b = run("pswa-vs-sgd", ["deterministic=true"])
strip = lambda h: [{k: v for k, v in e.items() if not k.startswith("time/")} for e in h]
if a is not None and b is not None:
    print("deterministic CUDA runs identical:", strip(a.history) == strip(b.history), flush=True)

# Data path alone: copies and throughput over one 50k-image epoch.
sys.path.insert(0, "bench")
from image_epoch import cifar_like
from workbench.tasks.image import ImageTask
data = cifar_like(50_000)
task = ImageTask(data, device=torch.device(dev), batch_size=128, eval_batch_size=1000, seed=0)
task.channels_last = dev == "cuda"
for _ in task.train_batches(0):
    pass
from torch.profiler import ProfilerActivity, profile
acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
with profile(activities=acts) as prof:
    n = sum(1 for _ in task.train_batches(1))
names = [e.name for e in prof.events()]
print(f"batches {n}; HtoD copies {sum('HtoD' in s for s in names)}; DtoH copies {sum('DtoH' in s for s in names)}; "
      f"cudaStreamSynchronize/DeviceSynchronize {sum('Synchronize' in s for s in names)}", flush=True)
if dev == "cuda":
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(5):
        for _ in task.train_batches(0):
            pass
    e.record(); e.synchronize()
    print(f"fast data path alone: {5 * 50_000 / (s.elapsed_time(e) / 1000):.0f} images/s", flush=True)
