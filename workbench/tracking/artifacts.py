"""Reading a run's artifacts: listing, text files, and the files the analyses load.

What a run leaves (written by :class:`~workbench.tracking.mlflow_sink.MlflowTracker`):
``spec.toml`` (the resolved spec; a study parent has ``study.toml``), ``error.txt``
(a failed run's traceback), ``weights/{average,backbone}.pt`` (full state dicts) and,
with ``averaging.keep_samples``, ``samples/wWW_sKKK.pt`` (window WW, sample KKK,
1-based). The file downloads raise :class:`~workbench.tracking.records.StoreError`
naming the run and the file; :func:`list_files` and :func:`text_artifact` are for
display and return what they can.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from workbench.tracking.records import StoreError

WEIGHTS = ("average", "backbone")


class FileEntry(NamedTuple):
    path: str  # relative to the run's artifact root
    size: Optional[int]  # bytes, when the store says


def iter_files(client, run_id: str, folder: Optional[str] = None) -> Iterator[FileEntry]:
    """Every file under ``folder`` (None: the whole run), folders walked (one query each),
    yielded as they are listed."""
    for a in client.list_artifacts(run_id, folder):
        if a.is_dir:
            yield from iter_files(client, run_id, a.path)
        else:
            yield FileEntry(a.path, a.file_size)


def list_files(client, run_id: str, folder: Optional[str] = None) -> list[FileEntry]:
    return list(iter_files(client, run_id, folder))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # a tqdm bar per download would clutter CLI output
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def download(client, run_id: str, path: str, dst: str | Path) -> Path:
    """Download the file (or folder) ``path`` into the folder ``dst``; its local path."""
    try:
        with _quiet():
            return Path(client.download_artifacts(run_id, path, str(dst)))
    except Exception as err:
        raise StoreError(f"run {run_id}: artifact {path} is missing ({type(err).__name__})") from None


def text_artifact(client, run_id: str, path: str) -> Optional[str]:
    """The text of a small artifact (spec, traceback); None when it is missing or unreadable."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return download(client, run_id, path, tmp).read_text()
    except Exception:
        return None


def download_spec(client, run_id: str, dst: str | Path) -> Path:
    """The run's ``spec.toml`` (its resolved spec), downloaded into ``dst``."""
    return download(client, run_id, "spec.toml", dst)


def download_weights(client, run_id: str, which: str, dst: str | Path) -> Path:
    """``weights/<which>.pt`` (``average``: the output average, BN statistics recomputed;
    ``backbone``: the last iterate), downloaded into ``dst``."""
    names = {f.path for f in list_files(client, run_id, "weights")}
    if f"weights/{which}.pt" not in names:
        hint = " (a run without averaging has no average: use backbone)" if which == "average" else ""
        raise StoreError(f"run {run_id}: no weights/{which}.pt artifact{hint}")
    return download(client, run_id, f"weights/{which}.pt", dst)


def download_samples(client, run_id: str, dst: str | Path) -> list[tuple[int, int, Path]]:
    """The run's kept samples downloaded into ``dst`` (one query for the whole folder), as
    ``(window, k, local path)`` sorted by window then k."""
    files = [f.path for f in list_files(client, run_id, "samples") if f.path.endswith(".pt")]
    if not files:
        raise StoreError(f"run {run_id}: no samples/ artifacts (run it with averaging.keep_samples = true)")
    folder = download(client, run_id, "samples", dst)
    out = []
    for f in files:
        w, k = Path(f).stem.split("_")  # wWW_sKKK
        out.append((int(w[1:]), int(k[1:]), folder / Path(f).name))
    return sorted(out, key=lambda s: (s[0], s[1]))
