"""Train loss and test error along the line between two solutions (Figures 4 and 5).

    w(t) = (1 - t) w_A + t w_B,   t over [-0.5, 1.5] by default (21 points)

as Izmailov et al.'s Figure 5, which the paper follows. What happens at each point:

1. Parameters and float buffers are interpolated (computed in fp32, exact at t = 0
   and t = 1); integer buffers (``num_batches_tracked``) are copied from A.
2. BN statistics are recomputed for w(t) (``recalibrate="auto"``: when the model
   has BN layers) with :func:`~workbench.engine.bn.recalibrate_bn` over the task's
   ``bn_batches`` (the run's own estimator and batch count by default). Every point
   sees the *same* BN batches: the task's generators are rewound before each pass,
   so differences along the line are not BN-sampling noise. Without BN layers
   nothing is recalibrated (the logged metrics then reproduce exactly at t = 0, 1).
3. Train loss / accuracy: the model in eval mode over the training set *without
   augmentation*, in full. Choice: a second task is built from the run's spec with
   ``dataset.augment = false`` (and the eval batch size); its ``train_batches`` is one
   pass over every training example, so the mean is over the whole set whatever the
   shuffle. ``train_max_batches`` limits it (then every point uses the same batches).
   The BN pass keeps the run's own (possibly augmented) ``bn_batches``, as the run did.
4. Test loss / accuracy on the ``test`` split, as the run evaluated it.

Pitfalls: analysis runs in fp32 (a CUDA run evaluated under bf16 autocast logs
slightly different numbers); a *backbone* endpoint's logged metrics use its
training-time BN statistics, so with BN they are not reproduced at t = 0 / 1 (the
point is recalibrated); with the ``reference`` estimator and augmented BN batches
the recomputed statistics of an *average* differ a little from the run's own pass
(a different draw of crops) — the ``pooled`` estimator on unaugmented data is exact.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch

from workbench.analysis.runs import AnalysisError

COMPARED_FIELDS = ("model.name", "model.options", "dataset.name", "dataset.options", "dataset.subset",
                   "dataset.val_fraction")


def line_points(start: float = -0.5, stop: float = 1.5, num: int = 21) -> np.ndarray:
    """``num`` evenly spaced t from ``start`` to ``stop``, rounded to 12 decimals so that
    0 and 1 (the two solutions) are hit exactly when they lie on the grid."""
    if num < 2 or stop <= start:
        raise AnalysisError(f"line points: need num >= 2 and stop > start, got {start}..{stop} x {num}")
    return np.round(np.linspace(start, stop, num), 12) + 0.0  # + 0.0: no -0.0


def interpolate_state(sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], t: float) -> dict:
    """``(1 - t) a + t b`` for floating tensors (in fp32 or better, cast back: exact a at
    t = 0 and b at t = 1); other tensors are copied from ``a``."""
    out = {}
    for k, a in sd_a.items():
        b = sd_b[k]
        if a.is_floating_point():
            wide = torch.promote_types(a.dtype, torch.float32)
            out[k] = ((1.0 - t) * a.to(wide) + t * b.to(device=a.device, dtype=wide)).to(a.dtype)
        else:
            out[k] = a.clone()
    return out


def check_states(sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor]) -> None:
    if set(sd_a) != set(sd_b):
        diff = sorted(set(sd_a) ^ set(sd_b))[:3]
        raise AnalysisError(f"the two solutions have different tensors ({', '.join(diff)} ...)")
    bad = [k for k in sd_a if sd_a[k].shape != sd_b[k].shape]
    if bad:
        raise AnalysisError(f"the two solutions differ in shape at {bad[0]}: {tuple(sd_a[bad[0]].shape)} "
                            f"vs {tuple(sd_b[bad[0]].shape)}")


@torch.no_grad()
def evaluate_batches(task, model: torch.nn.Module, batches: Iterable[Any], max_batches: int = 0) -> tuple[float, float]:
    """(mean loss, accuracy %) of ``model`` in eval mode over ``batches`` (the first
    ``max_batches`` of them when > 0), weighted by examples; one host read at the end."""
    was = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=task.device)
    correct = torch.zeros((), dtype=torch.int64, device=task.device)
    count = 0
    for i, batch in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        loss, c, n = task.loss(model, batch)
        loss_sum += loss.double() * n
        correct += c
        count += int(n)
    model.train(was)
    return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)


def train_eval_task(spec, device: torch.device, batch_size: Optional[int] = None):
    """A task over the run's data with augmentation off and batches of the eval size
    (``batch_size`` overrides it), whose ``train_batches`` is one plain pass over the
    training set: train loss without augmentation. Its generators are seeded from the
    run's seed, so the pass (and any prefix of it) is the same every time it is built."""
    from workbench.engine.run import build_task
    from workbench.spec import validate

    data = spec.model_dump(mode="json", exclude_none=True)
    data["dataset"]["augment"] = False
    data["budget"]["batch_size"] = batch_size or spec.budget.eval_batch_size
    return build_task(validate(data), device)[0]


def _state(task) -> Optional[dict]:
    return task.state_dict() if hasattr(task, "state_dict") else None


def _rewind(task, state: Optional[dict]) -> None:
    if state is not None:
        task.load_state_dict(state)


@dataclass
class LineResult:
    """Arrays over ``t``; losses are mean cross-entropies, accuracies and errors in %."""

    t: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    labels: tuple[str, str] = ("A", "B")
    run_ids: tuple[str, str] = ("", "")
    which: tuple[str, str] = ("average", "average")
    bn_recalibrated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def test_error(self) -> np.ndarray:
        return 100.0 - self.test_acc

    def at(self, t: float) -> dict[str, float]:
        """The point nearest to ``t``."""
        i = int(np.argmin(np.abs(self.t - t)))
        return {k: float(getattr(self, k)[i]) for k in ("t", "train_loss", "train_acc", "test_loss", "test_acc")}

    def to_csv(self, path: Optional[str | Path] = None) -> str:
        """CSV with columns t, train_loss, train_acc, test_loss, test_acc, test_error (full
        precision); written to ``path`` when given."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["t", "train_loss", "train_acc", "test_loss", "test_acc", "test_error"])
        for i in range(len(self.t)):
            w.writerow([repr(float(x)) for x in (self.t[i], self.train_loss[i], self.train_acc[i], self.test_loss[i],
                                                 self.test_acc[i], self.test_error[i])])
        text = buf.getvalue()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def summary(self) -> str:
        head = f"w(t) = (1 - t) {self.labels[0]} + t {self.labels[1]}   (BN recalibrated: {self.bn_recalibrated})"
        lines = [head, f"{'t':>6}  {'train loss':>10}  {'train acc':>9}  {'test loss':>9}  {'test err':>8}"]
        for i in range(len(self.t)):
            lines.append(f"{self.t[i]:6.2f}  {self.train_loss[i]:10.4f}  {self.train_acc[i]:9.2f}  "
                         f"{self.test_loss[i]:9.4f}  {self.test_error[i]:8.2f}")
        return "\n".join(lines)


def evaluate_line(
    task,
    model: torch.nn.Module,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    ts: Optional[Sequence[float]] = None,
    *,
    train_task=None,
    recalibrate: str | bool = "auto",
    bn_estimator: str = "reference",
    bn_max_batches: int = 0,
    train_max_batches: int = 0,
    seed: int = 0,
    labels: tuple[str, str] = ("A", "B"),
    progress: Optional[Callable[[int, int, dict], None]] = None,
) -> LineResult:
    """Evaluate w(t) for each t (see the module docstring); ``model`` is any module with
    ``sd_a``'s structure (its weights are overwritten). ``train_task`` supplies the train
    batches (default: ``task`` itself, i.e. its possibly augmented ``train_batches``).
    ``progress(i, n, point)`` is called after each point."""
    from workbench.engine.bn import bn_layers, recalibrate_bn
    from workbench.engine.loop import evaluate

    check_states(sd_a, sd_b)
    ts = line_points() if ts is None else np.asarray(ts, dtype=float)
    train_task = train_task or task
    do_bn = bool(bn_layers(model)) and recalibrate in ("auto", True)  # without BN there is nothing to do
    bn_state, train_state = _state(task), _state(train_task)
    rows = []
    for i, t in enumerate(ts):
        model.load_state_dict(interpolate_state(sd_a, sd_b, float(t)))
        if do_bn:
            _rewind(task, bn_state)
            with torch.random.fork_rng(devices=[task.device] if task.device.type == "cuda" else []):
                torch.manual_seed(seed)  # dropout during the BN pass: the same draw at every point
                recalibrate_bn(model, task.bn_batches(), task.forward, bn_estimator, bn_max_batches)
        _rewind(train_task, train_state)
        tr_loss, tr_acc = evaluate_batches(train_task, model, train_task.train_batches(0), train_max_batches)
        te_loss, te_acc = evaluate(task, model, "test")
        point = {"t": float(t), "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}
        rows.append(point)
        if progress is not None:
            progress(i, len(ts), point)
    _rewind(task, bn_state)
    col = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    return LineResult(col("t"), col("train_loss"), col("train_acc"), col("test_loss"), col("test_acc"),
                      labels=labels, bn_recalibrated=do_bn)


def check_compatible(spec_a, spec_b, names: tuple[str, str] = ("A", "B")) -> None:
    """Both runs must share the model and the data (name, options, subset, split)."""
    from workbench.spec import flatten

    fa, fb = flatten(spec_a), flatten(spec_b)
    for key in COMPARED_FIELDS:
        va = {k: v for k, v in fa.items() if k == key or k.startswith(key + ".")}
        vb = {k: v for k, v in fb.items() if k == key or k.startswith(key + ".")}
        if va != vb:
            raise AnalysisError(f"runs {names[0]} and {names[1]} differ in {key} ({va or '-'} vs {vb or '-'}): "
                                "a line between them needs the same model and dataset")


def _label(spec, which: str) -> str:
    from workbench.analysis.tables import PAPER_NAMES

    v = spec.averaging.variant
    name = PAPER_NAMES.get(v, v.upper()) if which == "average" else f"{PAPER_NAMES.get(v, v)} backbone"
    return "SGD" if v == "none" else name


def line_between_runs(
    run_a: str,
    run_b: str,
    *,
    which_a: str = "average",
    which_b: str = "average",
    ts: Optional[Sequence[float]] = None,
    uri: Optional[str] = None,
    device: str = "auto",
    train_max_batches: int = 0,
    bn_max_batches: Optional[int] = None,
    recalibrate: str | bool = "auto",
    out_dir: Optional[str | Path] = None,
    log: bool = False,
    progress: Optional[Callable[[int, int, dict], None]] = None,
) -> LineResult:
    """:func:`evaluate_line` between two logged runs' solutions (``which_*``: ``average``
    or ``backbone``). The task is built from run A's spec (device ``auto``: CUDA if
    available); BN uses A's ``averaging.bn_estimator`` and, unless ``bn_max_batches`` is
    given, A's ``averaging.bn_batches``. ``out_dir``: writes ``line.csv`` and ``line.png``
    there. ``log``: logs both into run A under ``analysis/`` as
    ``line_<B's first 8 chars>_<which_a>-<which_b>.{csv,png}``."""
    from workbench.analysis.runs import load_run_spec, load_weights, log_analysis
    from workbench.engine.run import build_task, resolve_device

    spec_a, spec_b = load_run_spec(run_a, uri), load_run_spec(run_b, uri)
    check_compatible(spec_a, spec_b, (run_a, run_b))
    dev = resolve_device(device)
    sd_a = load_weights(run_a, which_a, uri, map_location=dev)
    sd_b = load_weights(run_b, which_b, uri, map_location=dev)
    torch.manual_seed(spec_a.seed)
    task, model = build_task(spec_a, dev)
    train_task = train_eval_task(spec_a, dev)
    la, lb = _label(spec_a, which_a), _label(spec_b, which_b)
    if la == lb:
        la, lb = f"{la} ({run_a[:6]})", f"{lb} ({run_b[:6]})"
    avg = spec_a.averaging
    result = evaluate_line(task, model, sd_a, sd_b, ts, train_task=train_task, recalibrate=recalibrate,
                           bn_estimator=avg.bn_estimator,
                           bn_max_batches=avg.bn_batches if bn_max_batches is None else bn_max_batches,
                           train_max_batches=train_max_batches, seed=spec_a.seed, labels=(la, lb), progress=progress)
    result.run_ids, result.which = (run_a, run_b), (which_a, which_b)
    if out_dir is not None or log:
        from workbench.analysis.plots import plot_line_result, to_png

        png = to_png(plot_line_result(result, title=f"{spec_a.model.name} on {spec_a.dataset.name}"))  # rendered once
        if out_dir is not None:
            result.to_csv(Path(out_dir) / "line.csv")
            (Path(out_dir) / "line.png").write_bytes(png)
        if log:
            stem = f"line_{run_b[:8]}_{which_a}-{which_b}"
            log_analysis(run_a, files={f"{stem}.csv": result.to_csv(), f"{stem}.png": png}, uri=uri)
    return result
