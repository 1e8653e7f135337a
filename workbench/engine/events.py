"""Events flow up from the engine to sinks (MLflow, progress bar, JSON lines).

Kinds: ``start`` (run id, resolved spec, plan), ``epoch`` (one per epoch: step
= epoch number, 1-based, and the metrics logged for it), ``end`` (final metrics),
``failed`` (error). A sink is any callable taking an :class:`Event`; a sink that
raises is reported once on stderr and then ignored, so a broken display never
kills a run.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Optional, TextIO


@dataclass
class Event:
    kind: str
    run_id: Optional[str] = None
    step: Optional[int] = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, line: str) -> "Event":
        return cls(**json.loads(line))


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
    """Writes each event as one JSON line (what the launcher reads from a child)."""

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
