"""SWA Workbench terminal app (Textual): a thin face over ``workbench.launch`` and MLflow.

Layering: this package imports the core; the core never imports it (nor Textual).
The app is built by :func:`workbench.tui.app.build_app`, which takes its launcher
and its run store, so tests inject fakes (:mod:`workbench.testing`).

Startup rule: nothing here imports torch or mlflow at module import time. The
registries (and with them torch) load in a worker after the first frame; MLflow
loads in the store's workers.
"""
from __future__ import annotations

import argparse
from typing import Optional


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench tui", description="SWA Workbench terminal app")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    p.add_argument("--workers", type=int, default=None, help="runs at once (default: cores, or one per GPU)")
    p.add_argument("--preset", default="quickstart", help="preset selected at start (default: quickstart)")
    p.add_argument("--scale", default=None, help="preset scale selected at start, e.g. smoke")


def main(argv: Optional[list[str]] = None, args: Optional[argparse.Namespace] = None) -> int:
    """Run the app (``workbench tui`` and ``python -m workbench.tui``)."""
    args = args or parser().parse_args(argv)
    from workbench.tui.app import build_app

    app = build_app(uri=args.uri, workers=args.workers, preset=args.preset, scale=args.scale)
    app.run()
    return app.return_code or 0
