"""``workbench`` command line.

Exit status: 0 done, 1 the run failed (marked FAILED in MLflow), 2 bad input
(one line on stderr naming the field; nothing written), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional


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

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ep"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
    state = {"task": None}

    def sink(event) -> None:
        if event.kind == "start":
            progress.start()
            state["task"] = progress.add_task(event.data["spec"].get("preset") or "run",
                                              total=event.data["epochs"], info="")
        elif event.kind == "epoch" and state["task"] is not None:
            m = event.data["metrics"]
            parts = [f"loss {m['backbone/train_loss']:.3f}"]
            if "backbone/test_acc" in m:
                parts.append(f"TA {m['backbone/test_acc']:.2f}")
            if "average/test_acc" in m:
                parts.append(f"avg TA {m['average/test_acc']:.2f} (w{int(m.get('window', 0))}, n={int(m['average/n_samples'])})")
            progress.update(state["task"], completed=event.step, info="  ".join(parts))
        elif event.kind in ("end", "failed"):
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

    from rich.console import Console

    from workbench.engine.events import JsonLinesSink
    from workbench.engine.run import run

    console = Console(stderr=args.json_events)
    sinks = [JsonLinesSink(sys.stdout)] if args.json_events else []
    if not args.quiet and not args.json_events:
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
    if not args.json_events:
        m = result.metrics
        line = ", ".join(f"{k.split('/', 1)[1]} {v:.2f}" for k, v in m.items() if k.endswith("_acc"))
        console.print(f"[bold green]done[/] {line}")
        if result.run_id:
            from workbench.tracking.mlflow_sink import resolve_uri

            console.print(f"run id: [bold]{result.run_id}[/]")
            console.print(f"open the MLflow UI with: workbench ui   (store {resolve_uri(spec.tracking.uri)})")
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

    def on_event(handle, event) -> None:
        if event.kind == "exit":
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


def cmd_presets(args) -> int:
    from workbench.presets import describe, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {describe(name)}")
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
        print(f"no plugins found (looked in {', '.join(map(str, plugins.plugin_dirs()))} and entry points {plugins.GROUP})")
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
    r.add_argument("--json-events", action="store_true", help="write events as JSON lines on stdout (for launchers)")
    r.add_argument("--parent-run-id", default=None, help=argparse.SUPPRESS)
    r.add_argument("--tag", dest="tags", action="append", default=[], help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_run)

    st = sub.add_parser("study", help="run a grid x seeds as one MLflow parent run with a child per run")
    _spec_args(st)
    st.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default: the preset's)")
    st.add_argument("--workers", type=int, default=None, help="runs at once (default: cores, or one per GPU)")
    st.add_argument("--resume", nargs="?", const=True, default=None, metavar="PARENT_RUN_ID",
                    help="resume the latest (or the given) study: finished runs are kept")
    st.set_defaults(fn=cmd_study)

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
    if args.cmd in ("run", "study"):
        import signal

        # SIGTERM (a launcher that died, a cluster scheduler) ends a run KILLED, like Ctrl-C.
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
