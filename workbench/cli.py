"""``workbench`` command line.

Exit status: 0 done, 1 the run failed (marked FAILED in MLflow), 2 bad input
(one line on stderr naming the field; nothing written), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional


def _err(msg: str, code: int = 2) -> int:
    print(f"workbench: {msg}", file=sys.stderr)
    return code


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", help="preset name (see `workbench presets`) or a spec .toml file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a spec field (repeatable), e.g. --set budget.epochs=10")
    p.add_argument("--scale", default=None, help="preset scale, e.g. smoke or paper")


def _progress_sink(console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from workbench.engine.events import End, Epoch, Failed, Start

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ep"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
    state = {"task": None}

    def sink(event) -> None:
        if isinstance(event, Start):
            progress.start()
            state["task"] = progress.add_task(event.spec.get("preset") or "run", total=event.epochs, info="")
        elif isinstance(event, Epoch) and state["task"] is not None:
            m = event.metrics
            parts = [f"loss {m['backbone/train_loss']:.3f}"]
            if "backbone/test_acc" in m:
                parts.append(f"TA {m['backbone/test_acc']:.2f}")
            if "average/test_acc" in m:
                parts.append(f"avg TA {m['average/test_acc']:.2f} (w{int(m.get('window', 0))}, n={int(m['average/n_samples'])})")
            progress.update(state["task"], completed=event.step, info="  ".join(parts))
        elif isinstance(event, (End, Failed)):
            progress.stop()

    return sink


def cmd_run(args) -> int:
    from workbench.presets import load_spec
    from workbench.spec import SpecError

    try:
        spec = load_spec(args.preset, overrides=args.overrides, scale=args.scale)
        if args.no_track:
            spec.tracking.enabled = False
    except SpecError as err:
        return _err(str(err))

    try:
        channel = _event_channel(args)
    except OSError as err:
        return _err(f"--events-fd: {args.events_fd} is not a file descriptor open for writing ({err.strerror})")

    from rich.console import Console

    from workbench.engine.events import JsonLinesSink
    from workbench.engine.run import run

    machine = channel is not None  # a launcher reads the events: no progress bar, no summary
    console = Console(stderr=machine)
    sinks = [JsonLinesSink(channel)] if machine else []
    if not args.quiet and not machine:
        sinks.append(_progress_sink(console))
    try:
        tags = dict(t.split("=", 1) for t in args.tags if "=" in t)
        result = run(spec, sinks=sinks, parent_run_id=args.parent_run_id, tags=tags)
    except SpecError as err:
        return _err(str(err))
    except KeyboardInterrupt:
        return _err("interrupted; the run is marked KILLED", 130)
    except Exception as err:  # the run is already marked FAILED with its reason
        return _err(f"run failed: {type(err).__name__}: {err}", 1)
    if not machine:
        m = result.metrics
        line = ", ".join(f"{k.split('/', 1)[1]} {v:.2f}" for k, v in m.items() if k.endswith("_acc"))
        console.print(f"[bold green]done[/] {line}")
        if result.run_id:
            from workbench.tracking.mlflow_sink import resolve_uri

            console.print(f"run id: [bold]{result.run_id}[/]")
            console.print(f"open the MLflow UI with: workbench ui   (store {resolve_uri(spec.tracking.uri)})")
    return 0


def _event_channel(args):
    """Where the events go as JSON lines: the launcher's pipe (``--events-fd N``; stdout
    and stderr stay free for whatever the run's libraries print), stdout
    (``--json-events``), or nowhere (None)."""
    if args.events_fd is not None:
        import fcntl

        mode = fcntl.fcntl(args.events_fd, fcntl.F_GETFL) & os.O_ACCMODE  # EBADF if not open
        if mode not in (os.O_WRONLY, os.O_RDWR):
            raise OSError(0, "open for reading only")
        return os.fdopen(args.events_fd, "w", encoding="utf-8")
    return sys.stdout if args.json_events else None


def cmd_resume(args) -> int:
    from rich.console import Console

    from workbench.engine.run import resume
    from workbench.spec import SpecError

    console = Console()
    try:
        result = resume(args.run_id, sinks=[] if args.quiet else [_progress_sink(console)], uri=args.uri)
    except SpecError as err:
        return _err(str(err))
    except KeyboardInterrupt:
        return _err("interrupted; the run is marked KILLED (resume it again)", 130)
    except Exception as err:
        return _err(f"run failed: {type(err).__name__}: {err}", 1)
    console.print(f"[bold green]done[/] run id: [bold]{result.run_id}[/]")
    return 0


def cmd_study(args) -> int:
    from workbench.launch.study import load_study, run_study
    from workbench.spec import SpecError

    try:
        study = load_study(args.preset, seeds=args.seeds, scale=args.scale, overrides=args.overrides)
    except SpecError as err:
        return _err(str(err))
    total = len(study.cells)
    print(f"study {study.name}: {len(study.configurations)} configuration(s) x {len(study.seeds)} seed(s) "
          f"= {total} run(s)", flush=True)
    finished = [0]

    from workbench.engine.events import Exit

    def on_event(handle, event) -> None:
        if isinstance(event, Exit):
            finished[0] += 1
            acc = handle.final.get("final/average_test_acc", handle.final.get("final/backbone_test_acc"))
            tail = f"TA {acc:.2f}" if acc is not None else handle.error
            print(f"[{finished[0]}/{total}] {handle.status:<8} {handle.key}  {tail}", flush=True)

    try:
        result = run_study(study, workers=args.workers, resume=args.resume or False, on_event=on_event)
    except SpecError as err:
        return _err(str(err))
    except KeyboardInterrupt:
        return _err("interrupted; finished children are kept: rerun with --resume to complete the study", 130)
    if result.skipped:
        print(f"resumed: {result.skipped} finished run(s) kept, {len(result.handles)} run now")
    print(f"study parent run id: {result.parent_run_id}  ({result.status})")
    print(f"report: workbench report {result.parent_run_id}")
    return 0 if result.status == "FINISHED" else 1


def _keys(text: Optional[str]):
    if text is None:
        return None
    return tuple(k for k in text.split(",") if k) or ()


def default_layout(parent_params: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Rows and columns from a study's grid: the averaging variant down (the paper's
    layout), the other grid fields across; model across when nothing else varies."""
    try:
        grid = list(json.loads(parent_params.get("study.grid", "{}")))
        cases = json.loads(parent_params.get("study.cases", "[]"))
    except ValueError:
        grid, cases = [], []
    varied = list(dict.fromkeys(grid + [k for c in cases for k in c if not isinstance(c[k], dict)]))
    rows = ("averaging.variant",) if "averaging.variant" in varied or not varied else (varied[0],)
    cols = tuple(k for k in varied if k not in rows) or ("model.name",)
    return rows, cols


def cmd_report(args) -> int:
    from workbench.analysis import AnalysisError, aggregate, fetch_run, fetch_runs, write_report

    metric: Any = args.metric[0] if len(args.metric) == 1 and "=" not in args.metric[0] else (
        dict(m.split("=", 1) for m in args.metric) if args.metric else "final/average_test_acc")
    try:
        record = fetch_run(args.run_id, uri=args.uri)
        children = fetch_runs(args.run_id, uri=args.uri, status=None)
        rows, cols = default_layout(record["params"]) if children else (("averaging.variant",), ("model.name",))
        kwargs = dict(rows=_keys(args.rows) if args.rows is not None else rows,
                      cols=_keys(args.cols) if args.cols is not None else cols, metric=metric,
                      bold=None if args.bold == "none" else args.bold, digits=args.digits)
        if children:
            table, _ = write_report(args.run_id, args.out, uri=args.uri, log=not args.no_log,
                                    curves=not args.no_curves, **kwargs)
        else:  # a single run: its own row
            table = aggregate([record], **kwargs)
    except AnalysisError as err:
        return _err(str(err))
    print({"md": table.to_markdown, "html": table.to_html, "csv": table.to_csv}[args.format]())
    if children and not args.no_log:
        print(f"(logged to run {args.run_id} under report/)", file=sys.stderr)
    return 0


def cmd_analyze(args) -> int:
    from workbench.analysis import AnalysisError

    try:
        if args.what == "line":
            from workbench.analysis import line_between_runs, line_points

            res = line_between_runs(args.run_a, args.run_b, which_a=args.which_a, which_b=args.which_b,
                                    ts=line_points(args.t_from, args.t_to, args.points), uri=args.uri,
                                    device=args.device, train_max_batches=args.train_batches,
                                    out_dir=args.out, log=not args.no_log)
            print(res.summary())
        elif args.what == "flatness":
            from workbench.analysis import flatness_of_run

            rep = flatness_of_run(args.run, args.which, uri=args.uri, device=args.device, batches=args.batches,
                                  iters=args.iters, rhos=tuple(args.rho or (0.01, 0.05, 0.1)),
                                  directions=args.directions, seed=args.seed, log=not args.no_log)
            print(rep.summary())
        else:
            from workbench.analysis.plots import plot_run_samples, save

            path = save(plot_run_samples(args.run, uri=args.uri), args.out or "samples.png")
            if not args.no_log:
                from workbench.analysis.runs import log_analysis

                log_analysis(args.run, files={"samples.png": path.read_bytes()}, uri=args.uri)
            print(f"wrote {path}")
    except AnalysisError as err:
        return _err(str(err))
    return 0


def cmd_tui(args) -> int:
    from workbench.lazy import missing

    if msg := missing("textual", "workbench tui"):
        print(f"error: {msg}", file=sys.stderr)
        return 2
    from workbench.tui import main as tui_main

    return tui_main(args=args)


def cmd_presets(args) -> int:
    from workbench.presets import describe, plugin_presets, preset_names

    names = preset_names(load_plugins=True)
    from_plugins = plugin_presets()
    width = max(map(len, names))
    for name in names:
        origin = f"[plugin {from_plugins[name].parent.name}] " if name in from_plugins else ""
        print(f"{name:<{width}}  {origin}{describe(name)}")
    return 0


def cmd_show(args) -> int:
    from workbench.presets import load_spec
    from workbench.spec import SpecError, to_toml

    try:
        spec = load_spec(args.preset, overrides=args.overrides, scale=args.scale)
    except SpecError as err:
        return _err(str(err))
    print(to_toml(spec), end="")
    return 0


def cmd_schema(args) -> int:
    from workbench.spec import form_fields

    print(json.dumps(form_fields(), indent=1, default=str))
    return 0


def cmd_plugins(args) -> int:
    from workbench import plugins, registry

    registry.load_builtins()
    if not plugins.STATUS:
        dirs = ", ".join(map(str, plugins.plugin_dirs())) or "no folder: WORKBENCH_PLUGINS is unset"
        print(f"no plugins found (looked in {dirs} and entry points {plugins.GROUP})")
    for st in plugins.STATUS:
        if st.ok:
            print(f"ok      {st.name:<20} {', '.join(st.registered) or '(registered nothing)'}  [{st.source}]")
        else:
            print(f"FAILED  {st.name:<20} {st.error}  [{st.source}]")
    return 0


def cmd_ui(args) -> int:
    import subprocess

    from workbench.tracking.mlflow_sink import artifact_root, resolve_uri, sqlite_path

    uri = resolve_uri(args.uri)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    print(f"MLflow UI on http://{args.host}:{args.port}  (store {uri}); Ctrl-C stops it", flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="SWA Workbench: weight-averaging experiments")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="train one run from a preset or spec file")
    _spec_args(r)
    r.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    events = r.add_mutually_exclusive_group()
    events.add_argument("--json-events", action="store_true",
                        help="write events as JSON lines on stdout (for scripts; see workbench.engine.events)")
    events.add_argument("--events-fd", type=int, default=None, metavar="N",
                        help="write events as JSON lines on file descriptor N (what launchers use)")
    r.add_argument("--parent-run-id", default=None, help=argparse.SUPPRESS)
    r.add_argument("--tag", dest="tags", action="append", default=[], help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_run)

    rs = sub.add_parser("resume", help="continue a killed or failed run from its last checkpoint")
    rs.add_argument("run_id")
    rs.add_argument("--uri", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    rs.add_argument("--quiet", action="store_true")
    rs.set_defaults(fn=cmd_resume)

    st = sub.add_parser("study", help="run a grid x seeds as one MLflow parent run with a child per run")
    _spec_args(st)
    st.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default: the preset's)")
    st.add_argument("--workers", type=int, default=None, help="runs at once (default: cores, or one per GPU)")
    st.add_argument("--resume", nargs="?", const=True, default=None, metavar="PARENT_RUN_ID",
                    help="resume the latest (or the given) study: finished runs are kept")
    st.set_defaults(fn=cmd_study)

    rp = sub.add_parser("report", help="mean ± std table of a study (or one run), as Markdown, HTML and CSV")
    rp.add_argument("run_id", metavar="RUN_OR_STUDY_ID")
    rp.add_argument("--rows", default=None, help="param(s) down, comma-separated (default: from the study grid)")
    rp.add_argument("--cols", default=None, help="param(s) across, comma-separated")
    rp.add_argument("--metric", action="append", default=[],
                    help="metric (default final/average_test_acc), or LABEL=METRIC repeated for one column each")
    rp.add_argument("--bold", choices=["column", "row", "none"], default="column")
    rp.add_argument("--digits", type=int, default=None)
    rp.add_argument("--format", choices=["md", "html", "csv"], default="md")
    rp.add_argument("--out", default=None, help="also write table.{md,html,csv} and curves.png here")
    rp.add_argument("--no-curves", action="store_true")
    rp.add_argument("--no-log", action="store_true", help="do not log the report into the parent run")
    rp.add_argument("--uri", default=None)
    rp.set_defaults(fn=cmd_report)

    an = sub.add_parser("analyze", help="interpolation lines, flatness and sample plots of finished runs")
    asub = an.add_subparsers(dest="what", required=True)
    ln = asub.add_parser("line", help="train loss and test error along (1 - t) w_A + t w_B, BN recalibrated")
    ln.add_argument("run_a")
    ln.add_argument("run_b")
    ln.add_argument("--which-a", choices=["average", "backbone"], default="average")
    ln.add_argument("--which-b", choices=["average", "backbone"], default="average")
    ln.add_argument("--from", dest="t_from", type=float, default=-0.5)
    ln.add_argument("--to", dest="t_to", type=float, default=1.5)
    ln.add_argument("--points", type=int, default=21)
    ln.add_argument("--train-batches", type=int, default=0, help="batches for the train loss (0 = all)")
    fl = asub.add_parser("flatness", help="top Hessian eigenvalue, perturbation sharpness, sample spread")
    fl.add_argument("run")
    fl.add_argument("--which", choices=["average", "backbone"], default="average")
    fl.add_argument("--batches", type=int, default=4)
    fl.add_argument("--iters", type=int, default=50)
    fl.add_argument("--rho", type=float, action="append", help="relative perturbation norm (repeatable)")
    fl.add_argument("--directions", type=int, default=5)
    fl.add_argument("--seed", type=int, default=0)
    sm = asub.add_parser("samples", help="backbone TA at the start, each sample's TA and the average's (Figs 1, 2, 7)")
    sm.add_argument("run")
    for q in (ln, fl, sm):
        q.add_argument("--uri", default=None)
        q.add_argument("--no-log", action="store_true", help="do not log results into the run")
    for q in (ln, fl):
        q.add_argument("--device", default="auto")
    for q in (ln, sm):
        q.add_argument("--out", default=None, help="output folder (line) or PNG file (samples)")
    an.set_defaults(fn=cmd_analyze)

    from workbench.tui import add_arguments as tui_arguments  # torch-free, Textual-free

    tu = sub.add_parser("tui", help="the terminal app: launch, watch and compare runs")
    tui_arguments(tu)
    tu.set_defaults(fn=cmd_tui)

    sub.add_parser("presets", help="list presets with a one-line description").set_defaults(fn=cmd_presets)

    s = sub.add_parser("show", help="print the resolved spec of a preset as TOML")
    _spec_args(s)
    s.set_defaults(fn=cmd_show)

    sub.add_parser("schema", help="print the spec's form schema as JSON").set_defaults(fn=cmd_schema)
    sub.add_parser("plugins", help="list plugins: what loaded, and what failed with its error").set_defaults(fn=cmd_plugins)

    u = sub.add_parser("ui", help="start the MLflow UI on the workbench store")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=5000)
    u.add_argument("--uri", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    u.add_argument("--dry-run", action="store_true", help=argparse.SUPPRESS)
    u.set_defaults(fn=cmd_ui)
    return p


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd in ("run", "study", "resume"):
        import signal

        # SIGTERM (a launcher that died, a cluster scheduler) ends a run KILLED, like Ctrl-C.
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
