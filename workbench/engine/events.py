"""The event schema: what a run reports while it runs, and the one curve shape.

Events flow up: the engine emits them to sinks (MLflow, the progress bar, a JSON-lines
channel), a launcher reads a child's channel and adds its own. This module is the
contract every executor streams (the local launcher today, a Ray executor later): one
pydantic model per kind, a JSON line per event (:meth:`Event.to_json`), validated on
the way in (:meth:`Event.from_json`). Match kinds with ``isinstance`` on the classes
(or ``event.kind is Kind.epoch``), never with strings.

Every event has ``kind``, ``run_id`` (the MLflow run id; None before the run exists or
with tracking off) and ``step`` (the epoch it is about, when it is about one):

=========== ========= ==========================================================
kind        from      fields
=========== ========= ==========================================================
``queued``  launcher  ``key``: the launcher's name for the run. step None.
``launched`` launcher ``pid`` of the worker process. step None.
``start``   run       ``spec`` (resolved, as JSON), ``epochs`` (budget), ``threads``,
                      ``device``, ``windows`` (the plan's averaging windows),
                      ``tracking_uri``, ``experiment_id``, ``resumed``. step = the
                      epochs already done (0, or the checkpoint's epoch on resume).
``initial`` run       the evaluation of the initial weights, when averaging starts at
                      epoch 0: ``metrics`` (``backbone/<split>_{loss,acc}``),
                      ``epochs``. step = 0, logged to MLflow at step 0.
``epoch``   run       one per trained epoch: ``metrics`` (what MLflow logs at this
                      step), ``epochs``, ``elapsed_s``, ``eta_s`` (None if unknown).
                      step = the epoch, 1-based.
``end``     run       ``metrics``: the ``final/*`` metrics. step = the last epoch.
``failed``  run or    ``error`` (the reason), ``status`` FAILED or KILLED. Sent by the
            launcher  run before it exits, or by the launcher for a run cancelled
                      while queued. step None.
``exit``    launcher  the worker is gone: ``status`` (FINISHED, FAILED, KILLED),
                      ``error`` ("" when FINISHED), ``returncode``. step = the last
                      epoch seen. Always the last event of a run.
=========== ========= ==========================================================

Order per run: queued, launched, start, [initial], epoch..., end or failed, exit (a
run cancelled while queued: queued, failed, exit; a worker that dies mid-run may skip
end/failed, never exit). Metric values are floats; NaN and infinities travel as the
JSON constants ``NaN`` / ``Infinity`` (a diverged run must still report).

A sink is any callable taking an :class:`Event`; a sink that raises is reported once
on stderr and then ignored, so a broken display never kills a run.

A *curve set* (:data:`Curves`) is ``{metric: (steps, values)}``, two lists sorted by
step: the shape the store's histories have and every chart reads. :func:`add_point`
grows one from events (both live in :mod:`workbench.engine.curves`, which imports
nothing, so the store's modules can use them without loading pydantic).
"""
from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any, Callable, Iterable, Literal, Optional, TextIO, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from workbench.engine.curves import Curves, add_point  # noqa: F401  (part of the contract)


class Kind(StrEnum):
    queued = "queued"
    launched = "launched"
    start = "start"
    initial = "initial"
    epoch = "epoch"
    end = "end"
    failed = "failed"
    exit = "exit"


Metrics = dict[str, float]


class EventError(ValueError):
    """A line that is not a valid event; the message is one line naming what is wrong."""


class Event(BaseModel):
    """Fields every kind has; the concrete kinds below are the events."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    kind: Kind
    run_id: Optional[str] = None
    step: Optional[int] = None

    def __init__(self, **data: Any) -> None:
        if type(self) is Event:
            raise TypeError("Event is the common base: build one of its kinds (Epoch, Start, ...)")
        super().__init__(**data)

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, line: str | bytes) -> "AnyEvent":
        """The event a JSON line holds, as its kind's class. Raises :class:`EventError`
        for anything else: not JSON, an unknown kind, a missing, extra or mistyped field
        (on ``Epoch.from_json`` also an event of another kind)."""
        try:
            event = _ADAPTER.validate_json(line)
        except ValidationError as err:
            raise EventError(f"not an event: {_reason(err)} (in {_clip(line)})") from None
        if not isinstance(event, cls):
            raise EventError(f"not a {cls.__name__} event: {event.kind} (in {_clip(line)})")
        return event


class Queued(Event):
    kind: Literal[Kind.queued] = Kind.queued
    key: str


class Launched(Event):
    kind: Literal[Kind.launched] = Kind.launched
    pid: int


class Start(Event):
    kind: Literal[Kind.start] = Kind.start
    step: int = 0
    spec: dict[str, Any]
    epochs: int
    threads: int
    device: str
    windows: list[dict[str, Any]] = Field(default_factory=list)
    tracking_uri: Optional[str] = None
    experiment_id: Optional[str] = None
    resumed: bool = False


class Initial(Event):
    kind: Literal[Kind.initial] = Kind.initial
    step: Literal[0] = 0
    metrics: Metrics
    epochs: int


class Epoch(Event):
    kind: Literal[Kind.epoch] = Kind.epoch
    step: int = Field(ge=1)
    metrics: Metrics
    epochs: int
    elapsed_s: float
    eta_s: Optional[float] = None


class End(Event):
    kind: Literal[Kind.end] = Kind.end
    step: int
    metrics: Metrics


class Failed(Event):
    kind: Literal[Kind.failed] = Kind.failed
    error: str
    status: Literal["FAILED", "KILLED"]


class Exit(Event):
    kind: Literal[Kind.exit] = Kind.exit
    status: Literal["FINISHED", "FAILED", "KILLED"]
    error: str = ""
    returncode: int


# What a run itself sends (on its event channel); the others are the launcher's.
FROM_RUN = (Start, Initial, Epoch, End, Failed)

AnyEvent = Annotated[Union[Queued, Launched, Start, Initial, Epoch, End, Failed, Exit], Field(discriminator="kind")]
_ADAPTER: TypeAdapter = TypeAdapter(AnyEvent)


def _reason(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    if first["type"] == "union_tag_invalid":
        return f"kind: {first['ctx']['tag']} is not one of {', '.join(Kind)}"
    if first["type"] == "union_tag_not_found":
        return "kind: missing"
    where = ".".join(str(p) for p in first["loc"][1:])  # loc[0] is the kind's tag
    return f"{where}: {first['msg']}" if where else first["msg"]


def _clip(line: str | bytes, n: int = 80) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    return repr(text if len(text) <= n else text[:n] + "…")


# ----------------------------------------------------------------------------- sinks

Sink = Callable[[Event], None]


class Emitter:
    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)
        self._broken: set[int] = set()

    def __call__(self, event: Event) -> None:
        for i, sink in enumerate(self.sinks):
            if i in self._broken:
                continue
            try:
                sink(event)
            except Exception as err:  # a display must never kill a run
                self._broken.add(i)
                try:
                    print(f"workbench: event sink {sink!r} failed and was disabled: {err}", file=sys.stderr)
                except OSError:  # stderr is gone too (the launcher exited): carry on silently
                    pass


class JsonLinesSink:
    """Writes each event as one JSON line: on the launcher's event channel (a pipe the
    child got as ``--events-fd``), or on stdout with ``--json-events``."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(event.to_json() + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader (a launcher that let its runs outlive it) has gone: the run goes
            # on, MLflow still records everything.
            self.stream = None
