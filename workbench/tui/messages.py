"""Messages that cross widget boundaries (posted up; thread-safe via ``post_message``)."""
from __future__ import annotations

from typing import Any, Optional

from textual.message import Message


class RunUpdated(Message):
    """The launcher reported an event (a :mod:`workbench.engine.events` model) for one of
    this session's runs (posted from a launcher thread to the app)."""

    def __init__(self, handle: Any, event: Any) -> None:
        super().__init__()
        self.handle = handle
        self.event = event


class StoreRunsFound(Message):
    """Runs the store reports RUNNING that this session did not start, with their curves
    (``{run_id: {metric: (steps, values)}}``, as the store's ``history`` gives them)."""

    def __init__(self, records: list[dict], curves: dict[str, dict[str, tuple[list, list]]]) -> None:
        super().__init__()
        self.records = records
        self.curves = curves


class OpenRun(Message):
    """Ask the app to show a run's detail screen: a session row key or a store run id."""

    def __init__(self, key: Optional[str] = None, run_id: Optional[str] = None) -> None:
        super().__init__()
        self.key = key
        self.run_id = run_id


class ShowLink(Message):
    """Ask the app to show (and, with a browser, open) an MLflow UI deep link."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__()
        self.url = url
        self.what = what


class CancelRun(Message):
    """Ask the app to cancel one of this session's runs (by row key)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class CancelStudy(Message):
    """Ask the app to cancel the whole study of one of this session's runs (by row key):
    every queued and running run of the study, and its parent run ends KILLED."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
