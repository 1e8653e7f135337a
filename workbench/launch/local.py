"""Local launcher: runs execute as child processes that stream JSON-line events.

Each run is ``python -m workbench.cli run <spec.toml> --events-fd N`` in a child
process, where N is the write end of a pipe of its own: the event channel. The
launcher reads that pipe line by line, validates each line as an event of
:mod:`workbench.engine.events` (the schema every executor streams), updates the
run's :class:`RunHandle` and hands the pair to every subscriber (callbacks, or
:meth:`LocalLauncher.events`). The child's stdout and stderr carry nothing the
launcher parses, so whatever a library prints there (JSON-looking or not) cannot
corrupt or fake an event; the launcher keeps the last lines of both for error
messages. A line on the channel that is not an event is reported on the launcher's
stderr, never dropped silently. Faces (terminal app, notebook) subscribe;
they never train.

Parallelism: at most ``workers`` children at once. On CPU each child is told how
many runs share the cores (``WORKBENCH_CONCURRENT_RUNS``), so ``threads = "auto"``
gives it cores / workers torch threads and parallel runs do not oversubscribe.
On GPUs each child sees one GPU through ``CUDA_VISIBLE_DEVICES`` (round robin).

Cancel sends SIGINT first (the child marks its MLflow run KILLED and exits),
then SIGKILL after a grace period; the launcher marks the run KILLED itself if
the child could not. A failed run never stops the others.
"""
from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

if TYPE_CHECKING:
    from workbench.engine.curves import Curves
    from workbench.engine.events import Event

# The event classes are imported where they are used: they load pydantic (~0.1 s), and
# the terminal app builds its launcher before it paints its first frame.

ACTIVE = ("QUEUED", "RUNNING")


@dataclass
class RunHandle:
    """What the launcher knows of one run; updated from the child's events."""

    key: str
    spec: Any  # RunSpec
    parent_run_id: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "QUEUED"  # QUEUED, RUNNING, FINISHED, FAILED, KILLED
    run_id: Optional[str] = None
    experiment_id: Optional[str] = None
    epoch: int = 0
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # the latest value of each metric
    # Every metric's points so far, at step 0 (the initial weights, when averaging starts at
    # epoch 0) and at each epoch: the store's history shape. Pairs are replaced, never
    # changed in place, so dict(curves) is a consistent copy from any thread.
    curves: Curves = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    error: str = ""
    eta_s: Optional[float] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    gpu: Optional[int] = None
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)
    stderr_tail: deque = field(default_factory=lambda: deque(maxlen=40), repr=False)
    stdout_tail: deque = field(default_factory=lambda: deque(maxlen=40), repr=False)
    cancel_requested: bool = False

    @property
    def done(self) -> bool:
        return self.status not in ACTIVE

    @property
    def progress(self) -> float:
        return self.epoch / self.epochs if self.epochs else 0.0


Callback = Callable[[RunHandle, "Event"], None]


def default_workers(gpus: list[int]) -> int:
    if gpus:
        return len(gpus)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores)


def visible_gpus() -> list[int]:
    """GPU indices without importing torch (the terminal app must start fast)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [i for i, _ in enumerate(x for x in env.split(",") if x.strip() and x.strip() != "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=5)
        return [i for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]
    except (OSError, subprocess.SubprocessError):
        return []


class LocalLauncher:
    def __init__(self, workers: Optional[int] = None, gpus: Optional[list[int]] = None,
                 python: str = sys.executable, cwd: Optional[str] = None, grace_s: float = 10.0,
                 env: Optional[dict[str, str]] = None, outlive: bool = False):
        """``outlive``: children finish on their own when this process ends (the terminal
        app's "leave them running"); by default they die with it (a resumed study never
        races an orphan)."""
        self.gpus = visible_gpus() if gpus is None else gpus
        self.workers = workers or default_workers(self.gpus)
        self.python = python
        self.cwd = cwd
        self.grace_s = grace_s
        self.env = env or {}
        self.outlive = outlive
        self.handles: list[RunHandle] = []
        self._callbacks: list[Callback] = []
        self._queues: list[queue.Queue] = []
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._tmp = tempfile.TemporaryDirectory(prefix="workbench-launch-")
        self._counter = itertools.count()
        self._gpu_cycle = itertools.cycle(self.gpus) if self.gpus else None
        self._scheduler = threading.Thread(target=self._schedule, name="workbench-launcher", daemon=True)
        self._scheduler.start()

    # -- subscription ---------------------------------------------------------------
    def subscribe(self, callback: Callback) -> None:
        """``callback(handle, event)`` for every event, called from launcher threads."""
        self._callbacks.append(callback)

    def events(self, timeout: Optional[float] = None) -> Iterator[tuple[RunHandle, Event]]:
        """Iterate (handle, event) pairs until every submitted run is done."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._queues.append(q)
        try:
            while True:
                try:
                    yield q.get(timeout=0.2 if timeout is None else timeout)
                except queue.Empty:
                    if self.idle():
                        while not q.empty():
                            yield q.get_nowait()
                        return
        finally:
            with self._lock:
                self._queues.remove(q)

    def _publish(self, handle: RunHandle, event: "Event") -> None:
        for cb in list(self._callbacks):
            try:
                cb(handle, event)
            except Exception as err:  # a subscriber must not break the launcher
                print(f"workbench: launcher subscriber failed: {err}", file=sys.stderr)
        with self._lock:
            for q in self._queues:
                q.put((handle, event))

    # -- submission -----------------------------------------------------------------
    def submit(self, spec, *, key: Optional[str] = None, parent_run_id: Optional[str] = None,
               tags: Optional[dict[str, str]] = None) -> RunHandle:
        """Queue a validated RunSpec; returns its handle at once."""
        from workbench.engine.events import Queued

        if self._closed:
            raise RuntimeError("launcher is shut down")
        handle = RunHandle(key or f"run-{next(self._counter)}", spec, parent_run_id, dict(tags or {}),
                           epochs=spec.budget.epochs)
        with self._lock:
            self.handles.append(handle)
        self._publish(handle, Queued(key=handle.key))
        self._wake.set()
        return handle

    def cancel(self, handle: RunHandle) -> None:
        """Stop a queued or running run; it ends KILLED."""
        from workbench.engine.events import Failed

        with self._lock:
            handle.cancel_requested = True
            if handle.status == "QUEUED":
                handle.status = "KILLED"
                handle.ended = time.time()
                self._publish(handle, Failed(run_id=handle.run_id, status="KILLED", error="cancelled"))
                return
            proc = handle.proc
        if proc is not None:
            self._interrupt(proc)
        # else: being started right now; _start interrupts it as soon as it exists

    def _interrupt(self, proc: subprocess.Popen) -> None:
        """SIGINT (the child marks its run KILLED), then SIGKILL after the grace period."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            timer = threading.Timer(self.grace_s, lambda: proc.poll() is None and proc.kill())
            timer.daemon = True
            timer.start()

    def running(self) -> list[RunHandle]:
        with self._lock:
            return [h for h in self.handles if h.status == "RUNNING"]

    def idle(self) -> bool:
        with self._lock:
            return all(h.done for h in self.handles)

    def wait(self, timeout: Optional[float] = None) -> list[RunHandle]:
        end = None if timeout is None else time.time() + timeout
        while not self.idle():
            if end is not None and time.time() > end:
                raise TimeoutError("runs still active")
            time.sleep(0.1)
        return list(self.handles)

    def shutdown(self, cancel: bool = True) -> None:
        """Stop scheduling; with ``cancel`` stop every active run (KILLED)."""
        self._closed = True
        if cancel:
            for h in list(self.handles):
                if not h.done:
                    self.cancel(h)
        self._wake.set()

    # -- internals --------------------------------------------------------------------
    def _schedule(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            with self._lock:
                running = sum(1 for h in self.handles if h.status == "RUNNING")
                queued = [h for h in self.handles if h.status == "QUEUED"]
                start = queued[: max(0, self.workers - running)] if not self._closed else []
                for h in start:
                    h.status = "RUNNING"
            for h in start:
                self._start(h)
            if self._closed and self.idle():
                return

    def _start(self, handle: RunHandle) -> None:
        from workbench.engine.events import Launched
        from workbench.spec import to_toml

        path = Path(self._tmp.name) / f"{handle.key.replace('/', '_')}-{id(handle)}.toml"
        path.write_text(to_toml(handle.spec))
        read_fd, write_fd = os.pipe()  # the event channel: the child writes, the launcher reads
        cmd = [self.python, "-m", "workbench.cli", "run", str(path), "--events-fd", str(write_fd)]
        if handle.parent_run_id:
            cmd += ["--parent-run-id", handle.parent_run_id]
        for k, v in handle.tags.items():
            cmd += ["--tag", f"{k}={v}"]
        env = {**os.environ, **self.env, "WORKBENCH_CONCURRENT_RUNS": str(self.workers), "PYTHONUNBUFFERED": "1"}
        if self._gpu_cycle is not None:
            handle.gpu = next(self._gpu_cycle)
            env["CUDA_VISIBLE_DEVICES"] = str(handle.gpu)
        handle.started = time.time()
        try:
            # Own session: a Ctrl-C in the terminal reaches the launcher, which decides.
            # Parent-death signal: a launcher killed outright takes its children with it
            # (they end KILLED), so a resumed study never races an orphan.
            handle.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           errors="replace", pass_fds=(write_fd,), cwd=self.cwd, env=env,
                                           start_new_session=True,
                                           preexec_fn=None if self.outlive else _die_with_parent)
        except OSError as err:
            os.close(read_fd)
            self._finish(handle, 1, f"could not start: {err}")
            return
        finally:
            os.close(write_fd)  # the child has its copy: EOF on the channel once the child is gone
        if handle.cancel_requested:  # cancelled between scheduling and the process existing
            self._interrupt(handle.proc)
        self._publish(handle, Launched(pid=handle.proc.pid))
        drains = [threading.Thread(target=_drain, args=(stream, tail), daemon=True)
                  for stream, tail in ((handle.proc.stderr, handle.stderr_tail), (handle.proc.stdout, handle.stdout_tail))]
        for t in drains:
            t.start()
        threading.Thread(target=self._read, args=(handle, read_fd, drains), daemon=True).start()

    def _read(self, handle: RunHandle, fd: int, drains: list[threading.Thread]) -> None:
        from workbench.engine.events import FROM_RUN, Event, EventError

        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as channel:
            for line in channel:
                if not line.strip():
                    continue
                try:
                    event = Event.from_json(line)
                    if not isinstance(event, FROM_RUN):
                        raise EventError(f"a run does not send {event.kind} events")
                except EventError as err:
                    self._unreadable(handle, str(err))
                    continue
                self._apply(handle, event)
                self._publish(handle, event)
        rc = handle.proc.wait()
        for t in drains:  # the tails are complete before an error is taken from them
            t.join(timeout=5.0)
        self._finish(handle, rc)

    def _unreadable(self, handle: RunHandle, reason: str) -> None:
        """A line on the event channel that is not an event (a child of another version, or
        a bug): said on the launcher's stderr, one line each, and otherwise skipped."""
        try:
            print(f"workbench: run {handle.key}: {reason}", file=sys.stderr)
        except OSError:
            pass

    def _apply(self, handle: RunHandle, event: "Event") -> None:
        from workbench.engine.events import End, Epoch, Failed, Initial, Start, add_point

        with self._lock:
            if event.run_id:
                handle.run_id = event.run_id
            match event:
                case Start():
                    handle.epochs = event.epochs
                    handle.experiment_id = event.experiment_id
                case Initial() | Epoch():  # metrics at a step: 0 for the initial weights
                    handle.metrics.update(event.metrics)
                    add_point(handle.curves, event.step, event.metrics)
                    if isinstance(event, Epoch):
                        handle.epoch = event.step
                        handle.eta_s = event.eta_s
                case End():
                    handle.final = dict(event.metrics)
                case Failed():
                    handle.error = event.error

    def _finish(self, handle: RunHandle, rc: int, error: str = "") -> None:
        from workbench.engine.events import Exit

        if rc != 0 and handle.cancel_requested and handle.run_id:
            # Before the handle reads as done, so whoever waits on it finds the store settled
            # (a child killed before it could mark its run would otherwise stay RUNNING there).
            _mark_run(handle, "KILLED")
        with self._lock:
            handle.ended = time.time()
            if rc == 0:
                handle.status = "FINISHED"
            elif handle.cancel_requested:
                handle.status = "KILLED"
            else:
                handle.status = "FAILED"
            if handle.status != "FINISHED" and not handle.error:
                lines = [ln for tail in (handle.stdout_tail, handle.stderr_tail) for ln in tail if ln.strip()]
                handle.error = error or (lines[-1] if lines else f"exit status {rc}")
                if handle.error.startswith("workbench: "):
                    handle.error = handle.error[len("workbench: "):]
        self._publish(handle, Exit(run_id=handle.run_id, step=handle.epoch, status=handle.status, error=handle.error,
                                   returncode=rc))
        self._wake.set()


def _drain(stream, tail: deque) -> None:
    """Keep the last lines of a child's stdout or stderr (read to the end: a full pipe
    would block the child)."""
    for line in stream:
        tail.append(line.rstrip("\n"))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _mark_run(handle: RunHandle, status: str) -> None:
    """Mark a child's MLflow run when the child died before it could."""
    try:
        from workbench.tracking.mlflow_sink import client_for

        client, _ = client_for(handle.spec.tracking.uri)
        if client.get_run(handle.run_id).info.status == "RUNNING":
            client.set_terminated(handle.run_id, status=status)
    except Exception:  # the store may be unreachable; the launcher's own state is authoritative
        pass
