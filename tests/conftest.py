"""Shared fixtures: a fresh MLflow SQLite store per test (copied from a migrated
template: creating one costs ~3 s of Alembic migrations), one torch thread, and a
working directory that is never the repository's own mlruns/."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("WORKBENCH_CONCURRENT_RUNS", "2")  # threads=auto -> 1 on this 2-core machine


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # runs the migrations
    return db


@pytest.fixture
def mlflow_uri(tmp_path, _mlflow_template, monkeypatch) -> str:
    """A private, migrated SQLite store; also exported as MLFLOW_TRACKING_URI."""
    store = tmp_path / "mlruns"
    store.mkdir()
    shutil.copy(_mlflow_template, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
