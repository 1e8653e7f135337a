"""``run(spec)``: build the task, track it, train it, return the result.

Order matters for bad input: the spec is validated and the task built (data
read, model constructed) *before* anything is written to MLflow, so a bad spec
or missing data leaves no half-written run. Failures after that mark the run
FAILED (or KILLED on Ctrl-C) with the reason.
"""
from __future__ import annotations

import inspect
import os
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch

from workbench import registry
from workbench.engine.events import Emitter, End, Epoch, Event, Failed, Initial, Sink, Start
from workbench.spec import RunSpec, SpecError


@dataclass
class RunResult:
    run_id: Optional[str]
    metrics: dict[str, float]
    average_state_dict: Optional[dict[str, torch.Tensor]]
    backbone_state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    spec: Optional[RunSpec] = None
    samples: list = field(default_factory=list)  # (window, k, params) with averaging.keep_samples


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: Any) -> tuple[int, str]:
    """Torch CPU threads and why. ``auto``: cores / runs sharing them, where the
    launcher says how many runs share (``WORKBENCH_CONCURRENT_RUNS``). On 2 cores a
    second thread is ~15 % faster alone but ~4x slower once the cores are shared."""
    if threads != "auto":
        return int(threads), "set in spec"
    cores = available_cores()
    sharing = max(1, int(os.environ.get("WORKBENCH_CONCURRENT_RUNS", "1") or 1))
    n = max(1, cores // sharing)
    return n, f"auto: {cores} cores / {sharing} concurrent run(s)"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"device: {device} asked for, but no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SpecError(f"device: {device} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 autocast on CUDA (fp32 master weights), fp32 on CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise SpecError("precision: fp16 needs a CUDA device (use bf16 on CPU)")
    return precision


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def _call_with_options(entry: registry.Entry, first: Any, options: dict[str, Any], field_name: str) -> Any:
    known = entry.options()
    has_kwargs = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in inspect.signature(entry.obj).parameters.values())
    for key in options:
        if key not in known and not has_kwargs:
            raise SpecError(
                f"{field_name}.{key}: unknown option of {entry.name}; options: {', '.join(known) or 'none'}"
            )
    return entry.obj(first, **options)


def build_task(spec: RunSpec, device: torch.device):
    """Data, model and task for a spec. Raises SpecError for bad input."""
    registry.load_builtins()
    ds_entry = registry.DATASETS.get(spec.dataset.name)
    try:
        data = _call_with_options(ds_entry, spec.dataset, spec.dataset.options, "dataset.options")
    except (FileNotFoundError, ValueError) as err:  # missing or malformed data: bad input
        raise SpecError(str(err).splitlines()[0]) from None
    model_entry = registry.MODELS.get(spec.model.name)
    wants = model_entry.meta.get("task")
    if wants and wants != data.info.task:
        raise SpecError(
            f"model.name: {spec.model.name} is a {wants} model, but dataset {spec.dataset.name} is a {data.info.task} task"
        )
    try:
        model = _call_with_options(model_entry, data.info, spec.model.options, "model.options")
    except (TypeError, ValueError) as err:
        msg = str(err).splitlines()[0]
        raise SpecError(msg if ":" in msg.split(" ")[0] else f"model.options: {msg}") from None
    model = model.to(device)
    task_cls = registry.TASKS.get(data.info.task).obj
    task = task_cls(data, device=device, batch_size=spec.budget.batch_size,
                    eval_batch_size=spec.budget.eval_batch_size, seed=spec.seed)
    return task, model


def run(
    spec: RunSpec | dict | str,
    *,
    sinks: Iterable[Sink] = (),
    parent_run_id: Optional[str] = None,
    overrides: Optional[list[str]] = None,
    scale: Optional[str] = None,
    tags: Optional[dict[str, str]] = None,
) -> RunResult:
    """Train one run. ``spec`` is a RunSpec, a dict, or a preset name / TOML path.

    Returns the MLflow run id (None with tracking disabled), the final metrics,
    the output average's state dict (BN statistics recomputed) and the backbone's.
    """
    from workbench.presets import load_spec

    if not isinstance(spec, RunSpec):
        spec = load_spec(spec, overrides=overrides, scale=scale)
    elif overrides:
        from workbench.spec import apply_overrides, validate

        spec = validate(apply_overrides(spec.model_dump(mode="json", exclude_none=True), overrides))
    return _execute(spec, sinks, parent_run_id=parent_run_id, tags=tags)


def resume(run_id: str, *, sinks: Iterable[Sink] = (), uri: Optional[str] = None) -> RunResult:
    """Continue a killed or failed run from its last checkpoint, in the same MLflow run.

    The spec is the run's own ``spec.toml``; weights, optimizer, averager, RNG
    streams and history come from the checkpoint, so the result is bit-identical
    to an uninterrupted run on the same machine.
    """
    import tempfile

    from workbench.presets import load_spec
    from workbench.tracking.artifacts import download_spec
    from workbench.tracking.mlflow_sink import client_for
    from workbench.tracking.records import StoreError

    client, uri = client_for(uri)
    try:
        info = client.get_run(run_id).info
    except Exception:
        raise SpecError(f"resume: no run {run_id} in {uri}") from None
    if info.status == "FINISHED":
        raise SpecError(f"resume: run {run_id} already FINISHED")
    path = checkpoint_path(uri, run_id)
    if not path.exists():
        raise SpecError(f"resume: no checkpoint for run {run_id} at {path} (runs checkpoint with budget.checkpoint_every)")
    state = load_checkpoint(path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            spec = load_spec(str(download_spec(client, run_id, tmp)))
        except StoreError as err:
            raise SpecError(f"resume: {err}") from None
    spec.tracking.uri = uri
    return _execute(spec, sinks, resume_from=(run_id, state))


def load_checkpoint(path) -> dict:
    """A checkpoint's state, loaded with ``weights_only=True``: tensors and plain values
    only, so a file holding pickled objects (which could run code) is refused with a
    one-line :class:`SpecError`, as is a file that is not a checkpoint."""
    import pickle
    import re

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise SpecError(f"resume: checkpoint {path} holds a pickled object ({found.group(1)}), not only "
                            "tensors and plain values; refusing to load it") from None
        raise SpecError(f"resume: checkpoint {path} is unreadable (not a checkpoint, or torn)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise SpecError(f"resume: checkpoint {path} is unreadable ({type(err).__name__}: {first})") from None


def checkpoint_path(uri: str, run_id: str):
    """``$WORKBENCH_CHECKPOINTS/<run id>.pt``, else beside the SQLite store."""
    from pathlib import Path

    from workbench.tracking.mlflow_sink import sqlite_path

    root = os.environ.get("WORKBENCH_CHECKPOINTS")
    if root:
        return Path(root) / f"{run_id}.pt"
    db = sqlite_path(uri)
    return (db.parent if db is not None else Path(".")) / "checkpoints" / f"{run_id}.pt"


def _save_atomically(state: dict, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a torn checkpoint


def _execute(spec: RunSpec, sinks: Iterable[Sink], *, parent_run_id: Optional[str] = None,
             tags: Optional[dict[str, str]] = None, resume_from: Optional[tuple[str, Any]] = None) -> RunResult:
    threads, why = resolve_threads(spec.threads)
    torch.set_num_threads(threads)
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    channels_last = spec.memory_format == "channels_last" or (spec.memory_format == "auto" and device.type == "cuda")
    if spec.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned conv kernels
    seed_everything(spec.seed)
    task, model = build_task(spec, device)
    if channels_last and hasattr(task, "channels_last"):
        task.channels_last = True
        model = model.to(memory_format=torch.channels_last)

    emit = Emitter(sinks)
    tracker = None
    run_id = None
    if spec.tracking.enabled:
        from workbench.tracking.mlflow_sink import MlflowTracker, run_tags

        tracker = MlflowTracker(spec.tracking)
        if resume_from is not None:
            run_id = tracker.attach(resume_from[0])
        else:
            run_id = tracker.start(spec, {**run_tags(spec, str(device), threads), **(tags or {})}, parent_run_id)
            tracker.log_params({"resolved.threads": threads, "resolved.threads_reason": why,
                                "resolved.device": str(device), "resolved.precision": precision,
                                "resolved.channels_last": channels_last, "iters_per_epoch": task.iters_per_epoch})

    def send(event: Event) -> None:
        # Tracking is not a display: a failure to log fails the run. The initial weights'
        # evaluation is the metrics at step 0, an epoch's those at its (1-based) step.
        if tracker is not None and isinstance(event, (Initial, Epoch)):
            tracker.log_metrics(event.metrics, event.step)
        emit(event)

    from workbench.engine.loop import Trainer

    trainer = Trainer(spec, task, model, send, run_id, precision=precision)
    ckpt = None
    if tracker is not None and spec.budget.checkpoint_every:
        ckpt = checkpoint_path(tracker.uri, run_id)
        tracker.set_tags({"checkpoint": str(ckpt)})
    if resume_from is not None:
        trainer.load_state_dict(resume_from[1])  # loaded by load_checkpoint (weights_only)
    send(Start(
        run_id=run_id, step=len(trainer.history.epochs), spec=spec.model_dump(mode="json"),
        epochs=spec.budget.epochs, threads=threads, device=str(device),
        windows=[w.__dict__ for w in trainer.plan.windows], tracking_uri=tracker.uri if tracker else None,
        resumed=resume_from is not None, experiment_id=tracker.experiment_id if tracker else None,
    ))
    try:
        history = trainer.fit((lambda st: _save_atomically(st, ckpt)) if ckpt else None, spec.budget.checkpoint_every)
        avg_sd = trainer.average_state_dict()
        bb_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if tracker is not None:
            tracker.log_metrics(history.final, spec.budget.epochs)
            if spec.tracking.save_weights:
                tracker.log_state_dicts({"backbone": bb_sd, "average": avg_sd})
            if trainer.samples:
                tracker.log_state_dicts({f"w{w:02d}_s{k:03d}": sd for w, k, sd in trainer.samples}, "samples")
            tracker.finish("FINISHED")
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()  # finished: the weights are artifacts now
    except KeyboardInterrupt as err:
        if tracker is not None:
            tracker.fail(err, "KILLED")
        send(Failed(run_id=run_id, error="interrupted", status="KILLED"))
        raise
    except Exception as err:
        if tracker is not None:
            tracker.fail(err)
        send(Failed(run_id=run_id, error=f"{type(err).__name__}: {err}", status="FAILED"))
        raise
    send(End(run_id=run_id, step=spec.budget.epochs, metrics=history.final))
    return RunResult(run_id, history.final, avg_sd, bb_sd, history.epochs, spec, trainer.samples)
