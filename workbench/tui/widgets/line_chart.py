"""A braille line chart: a few series over one x axis, with shaded x spans.

Plain Unicode (2 x 4 dots per cell), no plotting dependency, deterministic output for
snapshots. Spans (averaging windows) are shaded with alternating backgrounds and
labelled in the plot's top row. Points with a gap in x larger than ``gap`` are not
joined (an average that exists only inside windows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

COLOURS = ("cyan", "magenta", "yellow", "green", "red", "blue", "bright_white", "bright_cyan")
SPAN_BG = ("grey19", "grey27")
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][col] within a cell


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: Optional[str] = None
    gap: Optional[float] = None  # do not join points further apart than this in x


@dataclass
class Span:
    start: float
    end: float
    label: str = ""


@dataclass
class ChartData:
    series: list[Series] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    x_label: str = "epoch"
    y_format: str = "{:.2f}"
    empty: str = "no data yet"


def _finite(v: float) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


class LineChart(Widget):
    """Set :attr:`data` (a :class:`ChartData`) with :meth:`plot`; it repaints on resize."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.data = ChartData()
        self._memo: tuple = ((), Text(""))

    def plot(self, data: ChartData) -> None:
        self.data = data
        self.refresh()

    # -- rendering ---------------------------------------------------------------------------
    def render(self) -> Text:
        # Textual re-renders on every show and restyle; the drawing only changes with the data
        # and the size.
        key = (id(self.data), self.content_size)
        if self._memo[0] != key:
            self._memo = (key, self._draw())
        return self._memo[1]

    def _draw(self) -> Text:
        w, h = self.content_size.width, self.content_size.height
        d = self.data
        pts = [(x, y) for s in d.series for x, y in zip(s.xs, s.ys) if _finite(x) and _finite(y)]
        if w < 12 or h < 4 or not pts:
            return Text(d.empty, style="dim", justify="center", overflow="fold")
        xs = [p[0] for p in pts] + [v for sp in d.spans for v in (sp.start, sp.end)]
        ys = [p[1] for p in pts]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if y1 - y0 < 1e-12:
            pad = abs(y0) * 0.05 or 1.0
            y0, y1 = y0 - pad, y1 + pad
        if x1 - x0 < 1e-12:
            x1 = x0 + 1
        labels = [d.y_format.format(v) for v in (y1, (y0 + y1) / 2, y0)]
        margin = max(map(len, labels)) + 1
        legend = len(d.series) > 1 or bool(d.series and d.series[0].label)
        rows = h - 1 - (1 if legend else 0)
        cols = w - margin
        if rows < 2 or cols < 4:
            return Text("")
        bits = [[0] * cols for _ in range(rows)]
        colour = [[""] * cols for _ in range(rows)]

        def to_dot(x: float, y: float) -> tuple[int, int]:
            dx = round((x - x0) / (x1 - x0) * (cols * 2 - 1))
            dy = round((y1 - y) / (y1 - y0) * (rows * 4 - 1))
            return dx, dy

        def put(dx: int, dy: int, c: str) -> None:
            cx, cy = dx // 2, dy // 4
            if 0 <= cx < cols and 0 <= cy < rows:
                bits[cy][cx] |= _DOTS[dy % 4][dx % 2]
                colour[cy][cx] = c

        for i, s in enumerate(d.series):
            c = s.colour or COLOURS[i % len(COLOURS)]
            prev = None
            for x, y in zip(s.xs, s.ys):
                if not (_finite(x) and _finite(y)):
                    prev = None
                    continue
                cur = to_dot(x, y)
                if prev is not None and (s.gap is None or abs(x - prev[2]) <= s.gap):
                    n = max(abs(cur[0] - prev[0]), abs(cur[1] - prev[1]), 1)
                    for k in range(n + 1):
                        put(round(prev[0] + (cur[0] - prev[0]) * k / n), round(prev[1] + (cur[1] - prev[1]) * k / n), c)
                else:
                    put(*cur, c)
                prev = (cur[0], cur[1], x)

        # x spans: background per column; their labels go on the axis row
        bg = [""] * cols
        axis = ["─"] * cols
        used = [False] * cols
        for j, sp in enumerate(d.spans):
            a = max(0, int((sp.start - x0) / (x1 - x0) * cols))
            b = min(cols, max(a + 1, int(math.ceil((sp.end - x0) / (x1 - x0) * cols))))
            for cx in range(a, b):
                bg[cx] = SPAN_BG[j % 2]
            if sp.label and b - a >= len(sp.label):
                for k, ch in enumerate(sp.label):
                    axis[a + k], used[a + k] = ch, True
        left, right = _fmt_x(x0), f"{d.x_label} {_fmt_x(x1)}" if d.x_label else _fmt_x(x1)
        for text, at in ((left, 0), (right, cols - len(right))):
            if at >= 0 and not any(used[at:at + len(text)]):
                for k, ch in enumerate(text):
                    axis[at + k], used[at + k] = ch, True

        out = Text(no_wrap=True, overflow="crop")
        if legend:
            for i, s in enumerate(d.series):
                out.append("━━ ", style=s.colour or COLOURS[i % len(COLOURS)])
                out.append(s.label + "  ")
            out.append("\n")
        for r in range(rows):
            lab = labels[0] if r == 0 else labels[2] if r == rows - 1 else labels[1] if r == rows // 2 else ""
            out.append(lab.rjust(margin - 1) + "┤", style="dim")
            for cx in range(cols):
                ch = chr(0x2800 + bits[r][cx]) if bits[r][cx] else " "
                out.append(ch, style=Style(color=colour[r][cx] or None, bgcolor=bg[cx] or None))
            out.append("\n")
        out.append(" " * (margin - 1) + "└", style="dim")
        for cx in range(cols):
            out.append(axis[cx], style=Style(color="grey62" if used[cx] else "grey42", bgcolor=bg[cx] or None))
        return out


def _fmt_x(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"
