"""The one curve shape: ``{metric: (steps, values)}``, two lists sorted by step.

What the store's histories are (``MlflowStore.history``), what a launcher handle keeps
live (``RunHandle.curves``) and what every chart reads. Imports nothing, so the store
and the faces can use it while the terminal app paints its first frame.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Mapping

Curves = dict[str, tuple[list[int], list[float]]]


def add_point(curves: Curves, step: int, metrics: Mapping[str, float]) -> None:
    """Add each metric's value at ``step`` to ``curves`` (kept sorted by step; a step
    seen before keeps the later value, as the store's histories do).

    A metric's ``(steps, values)`` pair is replaced by new lists, never changed in
    place: a reader on another thread that takes ``dict(curves)`` (one atomic copy)
    holds pairs of equal length that stay as they were."""
    for name, value in metrics.items():
        old_steps, old_values = curves.get(name, ((), ()))
        steps, values = list(old_steps), list(old_values)
        i = bisect_left(steps, step)
        if i < len(steps) and steps[i] == step:
            values[i] = float(value)
        else:
            steps.insert(i, int(step))
            values.insert(i, float(value))
        curves[name] = (steps, values)
