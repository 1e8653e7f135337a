"""The shipped notebooks run top to bottom in a real Jupyter kernel (the .venv's
``python3`` kernelspec, through nbclient), offline, into a private MLflow store, and are
committed without outputs. Each notebook checks its own numbers with ``assert`` cells,
so a wrong figure fails here, not only a crash."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"


def test_the_notebooks_are_there_and_committed_without_outputs():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "fig6_schedules_and_windows", "swa_vs_sgd_smoke"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == KERNEL, path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.fixture
def kernel_client_for(tmp_path):
    """A started nbclient client for a notebook, or a skip naming why no kernel started."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.skip(f"no {KERNEL!r} Jupyter kernelspec (install ipykernel into {sys.prefix})")
    clients = []

    def make(nb):
        client = NotebookClient(nb, timeout=150, kernel_name=KERNEL, resources={"metadata": {"path": str(tmp_path)}})
        try:
            client.km = client.create_kernel_manager()
            client.start_new_kernel()
            client.start_new_kernel_client()
        except Exception as err:  # the kernel process itself did not come up
            pytest.skip(f"a {KERNEL!r} kernel could not be started: {type(err).__name__}: {err}")
        clients.append(client)
        return client

    yield make
    for c in clients:
        if c.km is not None:  # execute() shuts its kernel down itself unless it stopped early
            c._cleanup_kernel()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_offline_top_to_bottom(path, kernel_client_for, mlflow_uri, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits the environment (and the store's URI)
    nb = nbformat.read(path, as_version=4)
    client = kernel_client_for(nb)
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name}: {str(err)[-1500:]}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"
    if path.stem == "quickstart":  # the smoke run went to the test's store, not the repository's
        from workbench.tracking.store import MlflowStore

        assert len(MlflowStore(mlflow_uri).items()) == 1
