"""Stand-ins for the launcher and the store: tests, snapshots and demos without processes.

:class:`FakeLauncher` has the :class:`~workbench.launch.local.LocalLauncher` surface the
app uses (``submit``, ``subscribe``, ``cancel``, ``running``, ``idle``, ``shutdown``,
``gpus``, ``workers``, ``handles``) and emits the same ``(handle, Event)`` pairs, but
only when told: :meth:`FakeLauncher.start`, :meth:`~FakeLauncher.initial`, :meth:`~FakeLauncher.epoch`,
:meth:`~FakeLauncher.finish`, :meth:`~FakeLauncher.fail`, or a scripted ``autoplay``
that a background thread replays for every submitted run.

:class:`MemoryStore` holds run records in memory with the :class:`~workbench.tracking.store.RunStore`
methods.
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable, Iterable, Optional

from workbench.engine.events import End, Epoch, Event, Exit, Failed, Initial, Launched, Queued, Start, add_point
from workbench.launch.local import RunHandle
from workbench.tracking.records import EPOCH_METRIC, EPOCH_TAG, Item, group_items

Script = Callable[[RunHandle], Iterable[tuple[str, dict]]]


class FakeLauncher:
    def __init__(self, gpus: Iterable[int] = (), workers: int = 2, autoplay: Optional[Script] = None,
                 delay_s: float = 0.01):
        self.gpus = list(gpus)
        self.workers = workers
        self.outlive = True  # "leave them running" is offered
        self.handles: list[RunHandle] = []
        self.cancelled: list[str] = []
        self.shutdowns: list[bool] = []
        self.autoplay = autoplay
        self.delay_s = delay_s
        self._callbacks: list[Callable] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- the launcher surface ------------------------------------------------------------
    def subscribe(self, callback: Callable) -> None:
        self._callbacks.append(callback)

    def submit(self, spec, *, key: Optional[str] = None, parent_run_id: Optional[str] = None,
               tags: Optional[dict] = None) -> RunHandle:
        with self._lock:
            h = RunHandle(key or f"run-{len(self.handles)}", spec, parent_run_id, dict(tags or {}),
                          epochs=spec.budget.epochs)
            self.handles.append(h)
        self._emit(h, Queued(key=h.key))
        if self.autoplay is not None:
            threading.Thread(target=self._play, args=(h,), daemon=True).start()
        return h

    def cancel(self, handle: RunHandle) -> None:
        self.cancelled.append(handle.key)
        if not handle.done:
            handle.cancel_requested = True
            self._exit(handle, "KILLED", "cancelled")

    def running(self) -> list[RunHandle]:
        return [h for h in self.handles if h.status == "RUNNING"]

    def idle(self) -> bool:
        return all(h.done for h in self.handles)

    def shutdown(self, cancel: bool = True) -> None:
        self.shutdowns.append(cancel)
        if cancel:
            for h in list(self.handles):
                self.cancel(h)

    # -- scripting -------------------------------------------------------------------------
    def start(self, h: RunHandle, run_id: Optional[str] = None, experiment_id: str = "1") -> None:
        h.status = "RUNNING"
        h.run_id = run_id or f"fake{next(self._ids):028d}"
        h.experiment_id = experiment_id
        h.started = time.time()
        self._emit(h, Launched(pid=0))
        self._emit(h, Start(run_id=h.run_id, spec=h.spec.model_dump(mode="json"), epochs=h.epochs, threads=1,
                            device="cpu", experiment_id=experiment_id))

    def initial(self, h: RunHandle, metrics: dict[str, float]) -> None:
        """The initial weights' evaluation (metrics at step 0)."""
        h.metrics.update(metrics)
        add_point(h.curves, 0, metrics)
        self._emit(h, Initial(run_id=h.run_id, metrics=metrics, epochs=h.epochs))

    def epoch(self, h: RunHandle, metrics: dict[str, float], eta_s: Optional[float] = None) -> None:
        h.epoch += 1
        h.metrics.update(metrics)
        add_point(h.curves, h.epoch, metrics)
        h.eta_s = eta_s
        self._emit(h, Epoch(run_id=h.run_id, step=h.epoch, metrics=metrics, epochs=h.epochs,
                            elapsed_s=time.time() - (h.started or time.time()), eta_s=eta_s))

    def finish(self, h: RunHandle, final: Optional[dict[str, float]] = None) -> None:
        h.final = dict(final or {})
        self._emit(h, End(run_id=h.run_id, step=h.epoch, metrics=h.final))
        self._exit(h, "FINISHED", "")

    def fail(self, h: RunHandle, error: str) -> None:
        h.error = error
        self._emit(h, Failed(run_id=h.run_id, error=error, status="FAILED"))
        self._exit(h, "FAILED", error)

    def play(self, h: RunHandle, history: list[dict[str, float]], final: Optional[dict] = None,
             error: Optional[str] = None, eta_s: float = 1.0) -> None:
        """Start ``h``, emit one epoch per dict of ``history``, then finish (or fail)."""
        self.start(h)
        for i, m in enumerate(history):
            self.epoch(h, m, eta_s * (len(history) - i - 1))
        if error is not None:
            self.fail(h, error)
        else:
            self.finish(h, final)

    # -- internals ---------------------------------------------------------------------------
    def _play(self, h: RunHandle) -> None:
        for kind, data in self.autoplay(h):
            time.sleep(self.delay_s)
            if h.done:
                return
            getattr(self, kind)(h, **data)

    def _exit(self, h: RunHandle, status: str, error: str) -> None:
        h.status = status
        h.error = h.error or error
        self._emit(h, Exit(run_id=h.run_id, step=h.epoch, status=status, error=h.error, returncode=0))

    def _emit(self, h: RunHandle, event: Event) -> None:
        for cb in list(self._callbacks):
            cb(h, event)


class MemoryStore:
    """Run records in memory (``run_id``, ``run_name``, ``status``, ``params``, ``metrics``,
    ``tags``, ``experiment_id``, ``start_time``, ``parent_run_id``), histories as
    ``{run_id: {metric: (steps, values)}}``, artifacts as ``{run_id: {path: text}}``."""

    def __init__(self, records: Iterable[dict[str, Any]] = (), histories: Optional[dict] = None,
                 artifacts: Optional[dict] = None, uri: str = "memory://"):
        self.uri = uri
        self.records = [dict(r) for r in records]
        self.histories = histories or {}
        self.files = artifacts or {}
        self.calls: list[str] = []

    def items(self) -> list[Item]:
        self.calls.append("items")
        return group_items(self.records)

    def active_runs(self) -> list[dict[str, Any]]:
        self.calls.append("active_runs")
        out = []
        for r in self.records:
            if r["status"] == "RUNNING" and r.get("tags", {}).get("study.kind") != "parent":
                tag = r.get("tags", {}).get(EPOCH_TAG)  # as the real store: the tag, else the curve's last step
                steps = self.histories.get(r["run_id"], {}).get(EPOCH_METRIC, ([], []))[0]
                out.append({**r, "epoch": int(tag) if tag is not None else max(steps, default=0)})
        return out

    def record(self, run_id: str) -> dict[str, Any]:
        for r in self.records:
            if r["run_id"] == run_id:
                return r
        raise KeyError(f"run {run_id} not found")

    def history(self, run_id: str, metrics: Iterable[str]) -> dict[str, tuple[list, list]]:
        h = self.histories.get(run_id, {})
        return {m: h[m] for m in metrics if m in h}

    def artifacts(self, run_id: str) -> list[str]:
        return sorted(self.files.get(run_id, {}))

    def text_artifact(self, run_id: str, path: str) -> Optional[str]:
        return self.files.get(run_id, {}).get(path)


# ----------------------------------------------------------------------------- sample data


def _params(variant: str, seed: int, epochs: int = 8, **more: str) -> dict[str, str]:
    p = {"preset": "quickstart", "seed": str(seed), "model.name": "toy_cnn", "dataset.name": "digits",
         "optimizer.name": "sgd", "schedule.name": "figure6", "schedule.lr": "0.05", "averaging.variant": variant,
         "averaging.start": "2", "averaging.period": "2", "budget.epochs": str(epochs), "device": "cpu"}
    p.update(more)
    return p


def sample_curves(variant: str, seed: int, epochs: int = 8, upto: Optional[int] = None) -> dict[str, tuple[list, list]]:
    """Deterministic per-epoch test accuracies shaped like a digits run."""
    steps = list(range(1, (upto or epochs) + 1))
    lift = {"swa": 0.0, "pswa": 0.5, "ema": -0.4}.get(variant, 0.2)
    bb = [round(70 + 25 * (1 - 0.6 ** e) + 0.3 * seed - (0.8 if e % 2 else 0), 2) for e in steps]
    out = {"backbone/test_acc": (steps, bb), "backbone/train_loss": (steps, [round(1.5 * 0.7 ** e, 4) for e in steps])}
    if variant != "none":
        avg = [(e, round(v + 1.2 + lift + 0.1 * seed * (1 + lift), 2)) for e, v in zip(steps, bb) if e > 2]
        out["average/test_acc"] = ([e for e, _ in avg], [v for _, v in avg])
    return out


def _run(run_id: str, name: str, variant: str, seed: int, status: str = "FINISHED", start: int = 0,
         parent: Optional[str] = None, upto: Optional[int] = None, **tags: str) -> tuple[dict, dict]:
    curves = sample_curves(variant, seed, upto=upto)
    metrics = {k: v[1][-1] for k, v in curves.items()}
    if status == "FINISHED":
        metrics["final/backbone_test_acc"] = metrics["backbone/test_acc"]
        if "average/test_acc" in metrics:
            metrics["final/average_test_acc"] = metrics["average/test_acc"]
    all_tags = {"variant": variant, "model": "toy_cnn", "dataset": "digits", "preset": "quickstart", **tags}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    rec = {"run_id": run_id, "run_name": name, "status": status, "params": _params(variant, seed),
           "metrics": metrics, "tags": all_tags, "experiment_id": "1", "start_time": start, "parent_run_id": parent}
    return rec, curves


def sample_store() -> MemoryStore:
    """A store with a study (SWA and PSWA x 3 seeds), a plain SGD run, a failed run and a
    run still RUNNING from another session; ids and numbers are fixed (for snapshots)."""
    records, histories, files = [], {}, {}
    parent = "a" * 32
    records.append({"run_id": parent, "run_name": "study-quickstart", "status": "FINISHED", "params": {
        "study.seeds": "[0, 1, 2]"}, "metrics": {}, "tags": {"study.kind": "parent", "study.name": "quickstart",
        "preset": "quickstart"}, "experiment_id": "1", "start_time": 100, "parent_run_id": None})
    n = 0
    for variant in ("swa", "pswa"):
        for seed in range(3):
            n += 1
            rid = f"{n:02d}" + "c" * 30
            rec, curves = _run(rid, f"quickstart-{variant}-toy_cnn-digits-s{seed}", variant, seed, start=100 + n,
                               parent=parent, **{"study.cell": f"averaging.variant={variant}", "study.seed": str(seed)})
            records.append(rec)
            histories[rid] = curves
    rec, curves = _run("b" * 32, "quickstart-none-toy_cnn-digits-s0", "none", 0, start=200)
    records.append(rec)
    histories[rec["run_id"]] = curves
    rec, curves = _run("d" * 32, "quickstart-swa-toy_cnn-digits-s7", "swa", 7, status="FAILED", start=300, upto=3,
                       error="RuntimeError: CUDA out of memory (demo)")
    records.append(rec)
    histories[rec["run_id"]] = curves
    files[rec["run_id"]] = {"spec.toml": 'preset = "quickstart"\nseed = 7\n\n[averaging]\nvariant = "swa"\n',
                            "error.txt": "Traceback (most recent call last):\n  File \"loop.py\", line 120\n"
                                         "RuntimeError: CUDA out of memory (demo)\n"}
    rec, curves = _run("e" * 32, "quickstart-pswa-toy_cnn-digits-s3", "pswa", 3, status="RUNNING", start=400, upto=5)
    records.append(rec)
    histories[rec["run_id"]] = curves
    return MemoryStore(records, histories, files, uri="sqlite:///demo/mlflow.db")
