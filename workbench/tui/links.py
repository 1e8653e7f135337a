"""Deep links into the MLflow UI (``workbench ui``), and opening them without a browser.

The UI's routes (``mlflow/server/js/src/experiment-tracking/routes.tsx``): a run page
``#/experiments/<exp>/runs/<run>`` and a compare page
``#/compare-runs?runs=[...]&experiments=[...]``. The base URL is
``$WORKBENCH_UI_URL`` or ``http://127.0.0.1:5000`` (``workbench ui``'s default).
"""
from __future__ import annotations

import json
import os
from typing import Iterable

DEFAULT_UI = "http://127.0.0.1:5000"


def ui_base() -> str:
    return os.environ.get("WORKBENCH_UI_URL", DEFAULT_UI).rstrip("/")


def run_url(experiment_id: str, run_id: str, base: str | None = None) -> str:
    return f"{base or ui_base()}/#/experiments/{experiment_id}/runs/{run_id}"


def compare_url(run_ids: Iterable[str], experiment_ids: Iterable[str], base: str | None = None) -> str:
    runs = json.dumps(list(dict.fromkeys(run_ids)), separators=(",", ":"))
    exps = json.dumps(list(dict.fromkeys(experiment_ids)), separators=(",", ":"))
    return f"{base or ui_base()}/#/compare-runs?runs={runs}&experiments={exps}"


def graphical_browser():
    """A browser that opens in its own window, or None.

    Without a display, Python's ``webbrowser`` falls back to console browsers (lynx,
    w3m) that would take over the app's terminal: those count as no browser.
    """
    import sys
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return None
    if isinstance(browser, webbrowser.GenericBrowser) and not isinstance(browser, webbrowser.BackgroundBrowser):
        return None  # a console browser
    return browser


def open_in_browser(url: str) -> bool:
    """Open ``url`` if a graphical browser is available; never raises."""
    browser = graphical_browser()
    if browser is None:
        return False
    try:
        return bool(browser.open(url, new=2))
    except Exception:
        return False
