"""The event schema (the contract every executor streams): one model per kind, JSON
lines that round-trip, malformed lines refused with the field named, the curve shape,
and the sinks that must never kill a run."""
from __future__ import annotations

import io
import math
import os
import typing

import pytest

from workbench.engine.events import (AnyEvent, Curves, Emitter, End, Epoch, Event, EventError, Exit, Failed, Initial,
                                     JsonLinesSink, Kind, Launched, Queued, Start, add_point)

RID = "0123456789abcdef0123456789abcdef"

ONE_OF_EACH = [
    Queued(key="quickstart seed=0"),
    Launched(pid=4242),
    Start(run_id=RID, spec={"preset": "quickstart", "seed": 0}, epochs=8, threads=1, device="cpu",
          windows=[{"index": 0, "start": 2, "end": 8, "restart": False}], tracking_uri="sqlite:///x.db",
          experiment_id="1"),
    Initial(run_id=RID, metrics={"backbone/test_acc": 11.5, "backbone/test_loss": 2.3}, epochs=8),
    Epoch(run_id=RID, step=3, metrics={"lr": 0.05, "backbone/train_loss": float("nan")}, epochs=8, elapsed_s=1.5,
          eta_s=2.5),
    End(run_id=RID, step=8, metrics={"final/backbone_test_acc": 95.0, "time/total_s": float("inf")}),
    Failed(run_id=RID, error="RuntimeError: loss is nan", status="FAILED"),
    Exit(run_id=RID, step=8, status="KILLED", error="cancelled", returncode=-2),
]


def same(a: Event, b: Event) -> bool:
    """Equal, with NaN equal to NaN (a diverged run's loss must survive the trip)."""
    da, db = a.model_dump(), b.model_dump()
    for d in (da, db):
        if "metrics" in d:
            d["metrics"] = {k: ("nan" if math.isnan(v) else v) for k, v in d["metrics"].items()}
    return type(a) is type(b) and da == db


def test_every_kind_has_one_model_and_the_union_covers_them_all():
    classes = typing.get_args(typing.get_args(AnyEvent)[0])
    assert {c.model_fields["kind"].default for c in classes} == set(Kind)
    assert {type(e).model_fields["kind"].default for e in ONE_OF_EACH} == set(Kind)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.kind)
def test_each_kind_round_trips_through_one_json_line(event):
    line = event.to_json()
    assert "\n" not in line and line.startswith('{"kind":"%s"' % event.kind)
    back = Event.from_json(line)
    assert same(back, event) and back.kind is event.kind
    assert same(type(event).from_json(line.encode()), event)  # bytes too, and the kind's own class


@pytest.mark.parametrize("line, says", [
    ("hello from a library", "Invalid JSON"),
    ("", "Invalid JSON"),
    ('{"kind": "progress", "step": 1}', "kind: progress is not one of queued, launched, start"),
    ('{"step": 1, "metrics": {}}', "kind: missing"),
    ('{"kind": "epoch", "step": 2, "epochs": 8, "elapsed_s": 1.0}', "metrics: Field required"),
    ('{"kind": "epoch", "step": 2, "metrics": {"lr": "fast"}, "epochs": 8, "elapsed_s": 1.0}', "metrics.lr: "),
    ('{"kind": "epoch", "step": 0, "metrics": {}, "epochs": 8, "elapsed_s": 0.0}', "step: Input should be greater"),
    ('{"kind": "initial", "step": 1, "metrics": {}, "epochs": 8}', "step: "),
    ('{"kind": "queued", "key": "a", "data": {}}', "data: Extra inputs are not permitted"),
    ('{"kind": "failed", "error": "x", "status": "DONE"}', "status: "),
    ("[1, 2]", "Input should be an object"),
])
def test_a_malformed_line_is_refused_with_one_line_naming_what_is_wrong(line, says):
    with pytest.raises(EventError) as err:
        Event.from_json(line)
    msg = str(err.value)
    assert says in msg and "\n" not in msg and msg.startswith("not an event: ")
    assert isinstance(err.value, ValueError)


def test_a_line_of_another_kind_is_refused_by_a_kinds_own_parser():
    with pytest.raises(EventError, match="^not a Start event: epoch"):
        Start.from_json(ONE_OF_EACH[4].to_json())


def test_events_are_built_as_their_kind_only():
    with pytest.raises(TypeError, match="build one of its kinds"):
        Event(kind=Kind.epoch)
    with pytest.raises(ValueError):
        Epoch(step=1, metrics={}, epochs=1)  # elapsed_s missing: a bad event fails where it is made
    with pytest.raises(ValueError):
        ONE_OF_EACH[0].key = "other"  # frozen: every subscriber sees the same event


def test_add_point_keeps_steps_sorted_later_values_win_and_never_changes_a_published_pair():
    curves: Curves = {}
    add_point(curves, 0, {"backbone/test_acc": 10})
    add_point(curves, 1, {"backbone/test_acc": 50.0, "lr": 0.1})
    before = dict(curves)  # what a reader on another thread holds
    add_point(curves, 2, {"backbone/test_acc": 60.0})
    add_point(curves, 1, {"backbone/test_acc": 55.0})  # a step seen before: the later value
    assert curves == {"backbone/test_acc": ([0, 1, 2], [10.0, 55.0, 60.0]), "lr": ([1], [0.1])}
    assert before["backbone/test_acc"] == ([0, 1], [10.0, 50.0])
    assert all(isinstance(v, float) for v in curves["backbone/test_acc"][1])


def test_a_broken_sink_is_disabled_once_and_the_others_keep_receiving(capsys):
    got = []

    def broken(event):
        raise RuntimeError("display gone")

    emit = Emitter([broken, got.append])
    for e in ONE_OF_EACH[:3]:
        emit(e)
    assert got == ONE_OF_EACH[:3]
    assert capsys.readouterr().err.count("failed and was disabled: display gone") == 1


def test_json_lines_sink_writes_parseable_lines_and_outlives_its_reader():
    buf = io.StringIO()
    sink = JsonLinesSink(buf)
    for e in ONE_OF_EACH:
        sink(e)
    assert all(same(Event.from_json(line), e) for line, e in zip(buf.getvalue().splitlines(), ONE_OF_EACH))
    r, w = os.pipe()
    os.close(r)  # the launcher went away
    stream = os.fdopen(w, "w")
    gone = JsonLinesSink(stream)
    gone(ONE_OF_EACH[0])  # no BrokenPipeError: the run goes on
    gone(ONE_OF_EACH[1])
    assert gone.stream is None
