"""Mean ± std tables over seeds, in the paper's layout (Tables 1-4).

Input is a list of run records (plain dicts, see :mod:`workbench.analysis.runs`),
so a table can be built from MLflow (:func:`table_for_parent`) or from anything
else. Runs are grouped into cells by the values of *row keys* and *column keys*
(param names such as ``averaging.variant`` and ``model.name``; a ``tags.`` prefix
reads a tag); each cell holds one metric over its runs.

The paper's layouts::

    Table 4   rows=averaging.variant  cols=model.name                       bold="column"
    Table 3   rows=()                 cols=averaging.variant                bold="row"
    Table 1/2 rows=model.name         cols=(dataset.name, averaging.variant) bold="row"

``bold="row"`` compares cells of a row that share every column key but the last
(Table 1: Adam vs SWA within each dataset). Best is the max for accuracies and
the min for losses and errors (a metric whose name contains ``loss`` or
``error``), compared at the displayed precision, so visual ties are all bold.

The "SGD" row: a run whose ``averaging.variant`` is ``none`` has no average, so
its cell uses ``none_metric`` (default ``final/backbone_test_acc``). Its label is
the backbone optimizer's name (SGD, Adam, AdamW), as in the paper.

Statistics: mean and the *sample* standard deviation (``numpy.std(ddof=1)``); a
cell with one run shows its value without ±. When cells hold different numbers of
runs, each cell shows its n. Runs without the metric are skipped and counted in
the footer.
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from workbench.analysis.runs import AnalysisError, fetch_runs, param_of

# Display names in the paper's words; the order is the paper's order of rows / columns.
PAPER_NAMES = {
    "none": "SGD", "swa": "SWA", "dswa": "DSWA", "tswa": "TSWA", "kswa": "K-SWA", "pswa": "PSWA", "ema": "EMA",
    "vgg16": "VGG16", "vgg16_bn": "VGG16-BN", "preresnet164": "PreResNet-164", "preresnet": "PreResNet",
    "wrn28_10": "WideResNet-28-10", "wide_resnet": "WideResNet", "tv_vgg16": "VGG16", "tv_resnet50": "ResNet-50",
    "tv_resnet152": "ResNet-152", "tv_densenet161": "DenseNet-161", "toy_cnn": "toy CNN", "mlp": "MLP",
    "gcn": "GCN", "graphsage": "GraphSAGE", "gat": "GAT", "gin": "GIN", "mincutpool": "MinCutPool",
    "sagpool": "SAGPool", "roberta": "RoBERTa",
    "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet", "cora": "Cora", "citeseer": "Citeseer",
    "pubmed": "Pubmed", "nci1": "NCI1", "dd": "D&D", "proteins": "PROTEINS", "mutag": "MUTAG", "mrpc": "MRPC",
    "digits": "digits", "synthetic": "synthetic",
}
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
VARIANT_KEY = "averaging.variant"

Key = tuple[str, ...]


def lower_is_better(metric: str) -> bool:
    return bool(re.search(r"loss|error", metric))


@dataclass
class Cell:
    """The runs of one (row, column): their values, and mean / sample std (ddof=1)."""

    values: list[float]
    run_ids: list[str] = field(default_factory=list)
    metric: str = ""

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); nan for a single run."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else math.nan


def _natural(v: str):
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _order(values: Sequence[Key], given: Optional[Sequence]) -> list[Key]:
    if given:
        want = [tuple(g) if isinstance(g, (tuple, list)) else (str(g),) for g in given]
        return [k for k in want if k in values] + [k for k in values if k not in want]
    paper = list(PAPER_NAMES)
    return sorted(values, key=lambda k: tuple((paper.index(v) if v in PAPER_NAMES else len(paper), _natural(v))
                                              for v in k))


@dataclass
class Table:
    """A mean ± std table. ``cells[(row, col)]``; rows and cols are tuples of raw values
    of ``row_keys`` / ``col_keys``; ``labels`` maps a raw value to its display name."""

    metric: str
    row_keys: Key
    col_keys: Key
    rows: list[Key]
    cols: list[Key]
    cells: dict[tuple[Key, Key], Cell]
    labels: dict[str, str] = field(default_factory=dict)
    higher_is_better: Optional[bool] = None
    bold: Optional[str] = "column"
    digits: Optional[int] = None  # None: 4 for losses, else 2
    none_metric: Optional[str] = None  # what runs without averaging showed (for the footer)
    skipped: list[str] = field(default_factory=list)
    title: str = ""

    def __post_init__(self):
        if self.higher_is_better is None:
            self.higher_is_better = not lower_is_better(self.metric)
        if self.digits is None:
            self.digits = 4 if "loss" in self.metric else 2
        if self.bold not in ("column", "row", None, "none"):
            raise AnalysisError(f"bold: expected column, row or none, got {self.bold!r}")

    # -- content ----------------------------------------------------------------------
    def cell(self, row: Key, col: Key) -> Optional[Cell]:
        return self.cells.get((tuple(row), tuple(col)))

    def label(self, key: Key) -> str:
        return " / ".join(self.labels.get(v, v) for v in key)

    def best(self) -> set[tuple[Key, Key]]:
        """The (row, col) of the bold cells; compared at the displayed precision."""
        if self.bold in (None, "none"):
            return set()
        groups: dict[Any, list[tuple[Key, Key]]] = {}
        for (r, c) in self.cells:
            g = c if self.bold == "column" else (r, c[:-1])
            groups.setdefault(g, []).append((r, c))
        out = set()
        pick = max if self.higher_is_better else min
        for members in groups.values():
            if len(members) < 2:
                continue
            shown = {m: round(self.cells[m].mean, self.digits) for m in members}
            top = pick(shown.values())
            out |= {m for m, v in shown.items() if v == top}
        return out

    def unequal_n(self) -> bool:
        return len({c.n for c in self.cells.values()}) > 1

    def footer(self) -> str:
        ns = sorted({c.n for c in self.cells.values()})
        what = f"Mean ± sample std (numpy ddof=1) of {self.metric} over seeds"
        if self.none_metric:  # set by aggregate() only when runs without averaging took part
            what += f" ({self.none_metric} for runs without averaging)"
        n = (f"n = {ns[0]} run{'s' if ns[0] != 1 else ''} per cell" if len(ns) == 1
             else f"n per cell shown (n = {ns[0]}..{ns[-1]})")
        parts = [what, n]
        if 1 in ns:
            parts.append("a single run shows no ±")
        if self.bold not in (None, "none"):
            how = "higher" if self.higher_is_better else "lower"
            parts.append(f"best per {'column' if self.bold == 'column' else 'row'} in bold ({how} is better)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} run(s) without the metric skipped")
        return "; ".join(parts) + "."

    def _text(self, cell: Optional[Cell], bold: bool, fmt: str) -> str:
        if cell is None:
            return "–"
        mean = f"{cell.mean:.{self.digits}f}"
        if bold:
            mean = f"**{mean}**" if fmt == "md" else f"<b>{mean}</b>"
        std = ""
        if cell.n > 1:
            std = f" ± {cell.std:.{self.digits}f}" if fmt == "md" else f"<sub>±{cell.std:.{self.digits}f}</sub>"
        n = f" (n={cell.n})" if self.unequal_n() else ""
        return mean + std + n

    # -- output -------------------------------------------------------------------------
    def to_markdown(self) -> str:
        best = self.best()
        corner = " / ".join(self.row_keys)
        head = [corner] + [self.label(c) or self.metric for c in self.cols]
        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        for r in self.rows:
            texts = [self._text(self.cell(r, c), (r, c) in best, "md") for c in self.cols]
            lines.append("| " + " | ".join([self.label(r) or self.metric] + texts) + " |")
        lines += ["", self.footer()]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        best = self.best()
        esc = html.escape
        out = ["<table>"]
        if self.title:
            out.append(f"<caption>{esc(self.title)}</caption>")
        out.append("<thead>")
        levels = max(1, len(self.col_keys))
        for lvl in range(levels):
            row = [f'<th rowspan="{levels}">{esc(" / ".join(self.row_keys))}</th>'] if lvl == 0 else []
            i = 0
            while i < len(self.cols):  # merge runs of equal prefixes into one spanning header
                j = i
                while j + 1 < len(self.cols) and self.cols[j + 1][: lvl + 1] == self.cols[i][: lvl + 1]:
                    j += 1
                text = self.labels.get(self.cols[i][lvl], self.cols[i][lvl]) if self.col_keys else self.metric
                row.append(f'<th colspan="{j - i + 1}">{esc(text)}</th>' if j > i else f"<th>{esc(text)}</th>")
                i = j + 1
            out.append("<tr>" + "".join(row) + "</tr>")
        out.append("</thead><tbody>")
        for r in self.rows:
            tds = "".join(f"<td>{self._text(self.cell(r, c), (r, c) in best, 'html')}</td>" for c in self.cols)
            out.append(f"<tr><th>{esc(self.label(r) or self.metric)}</th>{tds}</tr>")
        n = len(self.cols) + 1
        out.append(f'</tbody><tfoot><tr><td colspan="{n}">{esc(self.footer())}</td></tr></tfoot></table>')
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        """One line per cell, full float precision, so :meth:`from_csv` gives the table back.
        Columns: ``row:<key>``..., ``col:<key>``..., row_label, col_label, metric, n, mean,
        std (sample, ddof=1; empty for n = 1), best, values (``;``-separated), run_ids."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([f"row:{k}" for k in self.row_keys] + [f"col:{k}" for k in self.col_keys]
                   + ["row_label", "col_label", "metric", "n", "mean", "std", "best", "values", "run_ids"])
        best = self.best()
        for r in self.rows:
            for c in self.cols:
                cell = self.cell(r, c)
                if cell is None:
                    continue
                w.writerow(list(r) + list(c) + [self.label(r), self.label(c), cell.metric, cell.n, repr(cell.mean),
                                                "" if cell.n < 2 else repr(cell.std), int((r, c) in best),
                                                ";".join(repr(float(v)) for v in cell.values), ";".join(cell.run_ids)])
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str, metric: Optional[str] = None, **kwargs) -> "Table":
        """Read back :meth:`to_csv`; ``metric`` defaults to the most common cell metric.
        Display choices (``bold``, ``digits``, ``title``) are not in the CSV: pass them."""
        rd = list(csv.reader(io.StringIO(text)))
        head, body = rd[0], rd[1:]
        rk = tuple(h[4:] for h in head if h.startswith("row:"))
        ck = tuple(h[4:] for h in head if h.startswith("col:"))
        ix = {h: i for i, h in enumerate(head)}
        cells, labels, rows, cols = {}, {}, [], []
        for line in body:
            r, c = tuple(line[: len(rk)]), tuple(line[len(rk): len(rk) + len(ck)])
            for key, lab in ((r, line[ix["row_label"]]), (c, line[ix["col_label"]])):
                parts = lab.split(" / ") if lab else []
                if len(parts) == len(key):
                    labels.update({v: p for v, p in zip(key, parts) if v != p})
            values = [float(v) for v in line[ix["values"]].split(";") if v]
            ids = [v for v in line[ix["run_ids"]].split(";") if v]
            cells[(r, c)] = Cell(values, ids, line[ix["metric"]])
            rows += [r] if r not in rows else []
            cols += [c] if c not in cols else []
        if metric is None:
            ms = [c.metric for c in cells.values()]
            metric = max(set(ms), key=ms.count) if ms else ""
        return cls(metric, rk, ck, rows, cols, cells, labels=labels, **kwargs)


def _keys(k: Optional[str | Sequence[str]]) -> Key:
    if k is None or k == "":
        return ()
    return (k,) if isinstance(k, str) else tuple(k)


def resolve_none_metric(metric: str, none_metric: Optional[str]) -> str:
    """The metric a ``none``-variant run contributes for ``metric``: ``auto`` swaps
    ``average`` for ``backbone`` (``final/average_test_loss`` -> ``final/backbone_test_loss``);
    None keeps ``metric``; any other string is used as given."""
    if none_metric is None:
        return metric
    if none_metric == "auto":
        return metric.replace("average", "backbone", 1)
    return none_metric


def aggregate(
    runs: Sequence[Mapping[str, Any]],
    rows: Optional[str | Sequence[str]] = VARIANT_KEY,
    cols: Optional[str | Sequence[str]] = "model.name",
    metric: str | Mapping[str, str] = "final/average_test_acc",
    *,
    none_metric: Optional[str] = "auto",
    labels: Optional[Mapping[str, str]] = None,
    row_order: Optional[Sequence] = None,
    col_order: Optional[Sequence] = None,
    bold: Optional[str] = "column",
    higher_is_better: Optional[bool] = None,
    digits: Optional[int] = None,
    title: str = "",
) -> Table:
    """Group ``runs`` into a :class:`Table` of ``metric`` (see the module docstring).

    ``rows`` / ``cols``: a param name, a sequence of them (multi-level), or None / ``()``
    for a single row or column. ``metric`` may be ``{label: metric}``: then each metric is
    a column of its own, under a last column level ``metric`` (Table 1 from one set of
    runs: ``{"Adam": "final/backbone_test_acc", "SWA": "final/average_test_acc"}``, in that
    order). ``none_metric``: see :func:`resolve_none_metric` (default ``auto``: the SGD row
    shows the backbone's metric). ``labels`` override display names of raw values (e.g.
    ``{"none": "Adam"}``); the defaults are :data:`PAPER_NAMES`, and the backbone
    optimizer's name for the ``none`` variant. ``digits``: decimals shown (default 2, 4 for
    losses); best cells are compared at this precision. A run missing a row or column key
    is grouped under ``"?"``; a run missing the metric is skipped (``Table.skipped``).
    """
    rk, ck = _keys(rows), _keys(cols)
    multi = isinstance(metric, Mapping)
    metrics = dict(metric) if multi else {"": metric}
    if not metrics:
        raise AnalysisError("aggregate: no metric given")
    cells: dict[tuple[Key, Key], Cell] = {}
    skipped: list[str] = []
    optimizers: set = set()  # of the runs without averaging that took part
    for run in runs:
        plain = param_of(run, VARIANT_KEY) == "none"
        r = tuple(str(param_of(run, k) or "?") for k in rk)
        c = tuple(str(param_of(run, k) or "?") for k in ck)
        for label, m in metrics.items():
            use = resolve_none_metric(m, none_metric) if plain else m
            value = run.get("metrics", {}).get(use)
            if value is None or not math.isfinite(float(value)):
                if run.get("run_id", "?") not in skipped:
                    skipped.append(run.get("run_id", "?"))
                continue
            cell = cells.setdefault((r, c + ((label,) if multi else ())), Cell([], [], use))
            cell.values.append(float(value))
            cell.run_ids.append(run.get("run_id", ""))
            if plain:
                optimizers.add(param_of(run, "optimizer.name"))
    if not cells:
        raise AnalysisError(f"aggregate: no run has the metric {' or '.join(metrics.values())}")
    shown = {v: PAPER_NAMES[v] for (r, c) in cells for v in r + c if v in PAPER_NAMES}
    if len(optimizers) == 1 and next(iter(optimizers)) in OPTIMIZER_NAMES and VARIANT_KEY in rk + ck:
        shown["none"] = OPTIMIZER_NAMES[next(iter(optimizers))]
    if multi:
        shown.update({k: k for k in metrics})  # metric labels are shown as given
    shown.update(labels or {})
    col_keys = list(dict.fromkeys(c for _, c in cells))
    if multi and not col_order:  # the metric level keeps the mapping's order
        rank = {k: i for i, k in enumerate(metrics)}
        prefixes = _order(list(dict.fromkeys(c[:-1] for c in col_keys)), None)
        cols_sorted = sorted(col_keys, key=lambda c: (prefixes.index(c[:-1]), rank[c[-1]]))
    else:
        cols_sorted = _order(col_keys, col_order)
    described = ", ".join(f"{k} = {v}" for k, v in metrics.items()) if multi else metric
    main = next(iter(metrics.values()))
    return Table(
        described, rk, ck + (("metric",) if multi else ()),
        _order(list(dict.fromkeys(r for r, _ in cells)), row_order), cols_sorted,
        cells, labels=shown,
        higher_is_better=not lower_is_better(main) if higher_is_better is None else higher_is_better,
        bold=bold, digits=digits if digits is not None else (4 if "loss" in main else 2),
        none_metric=resolve_none_metric(main, none_metric) if optimizers and none_metric is not None else None,
        skipped=skipped, title=title,
    )


def table_for_parent(parent_run_id: str, *, uri: Optional[str] = None, **kwargs) -> Table:
    """:func:`aggregate` over the FINISHED children of a study's parent run."""
    runs = fetch_runs(parent_run_id, uri=uri)
    if not runs:
        raise AnalysisError(f"run {parent_run_id}: no finished child runs")
    return aggregate(runs, **kwargs)


def write_report(parent_run_id: str, out_dir=None, *, uri: Optional[str] = None, log: bool = True,
                 curves: bool = True, **table_kwargs) -> tuple[Table, dict[str, Any]]:
    """A study's report: ``table.md``, ``table.html``, ``table.csv`` and (``curves``) a
    ``curves.png`` of TA per epoch grouped by the table's row and column keys. Written to
    ``out_dir`` when given; logged into the parent run under ``report/`` when ``log``.
    Returns the table and ``{file name: text or PNG bytes}``."""
    from pathlib import Path

    from workbench.analysis.runs import log_analysis

    table = table_for_parent(parent_run_id, uri=uri, **table_kwargs)
    files: dict[str, Any] = {"table.md": table.to_markdown(), "table.html": table.to_html(),
                             "table.csv": table.to_csv()}
    if curves:
        from workbench.analysis.plots import plot_study_curves, to_png

        keys = tuple(k for k in table.row_keys + table.col_keys if k != "metric") or (VARIANT_KEY,)
        files["curves.png"] = to_png(plot_study_curves(parent_run_id, keys, uri=uri, labels=table.labels))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (out / name).write_bytes(content) if isinstance(content, bytes) else (out / name).write_text(content)
    if log:
        log_analysis(parent_run_id, files=files, folder="report", uri=uri)
    return table, files
