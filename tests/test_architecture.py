"""The architecture, checked in one place.

* ``lint-imports`` (import-linter, contracts in ``pyproject.toml``): faces above
  launch/analysis above engine/tracking above spec/registry; the headless core never
  imports Textual, ipywidgets or a face; the two faces are independent. Static: imports
  inside functions count too.
* The contracts can fail: a scratch copy of the package with one wrong import breaks them.
* Start-up cost, which a static check cannot see: the modules a face paints from import
  neither torch nor mlflow (they load later, in workers), and no other face's toolkit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath  # ahead of the editable install's finder
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_hold():
    out = lint(REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("workbench/engine/loop.py", "from workbench.faces import views  # wrong: the engine below the faces",
     "Layers"),
    ("workbench/tracking/queries.py", "import textual  # wrong: a face's toolkit in the core",
     "The headless core never imports"),
    ("workbench/tui/app.py", "import workbench.notebook.app  # wrong: one face importing the other",
     "Each face draws with its own toolkit only"),
])
def test_a_wrong_import_in_a_scratch_copy_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(REPO / "workbench", tmp_path / "workbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n\ndef _scratch():\n    {line}\n")
    out = lint(tmp_path, pythonpath=str(tmp_path))
    assert out.returncode != 0, out.stdout[-2000:]
    assert f"{broken}" in out.stdout and "BROKEN" in out.stdout, out.stdout[-3000:]
    assert str(tmp_path) in out.stdout or module.replace("/", ".")[:-3] in out.stdout


@pytest.mark.parametrize("modules, absent", [
    (["workbench", "workbench.presets", "workbench.spec"], {"torch", "mlflow", "textual", "ipywidgets"}),
    (["workbench.faces.forms", "workbench.faces.views", "workbench.faces.launch"],
     {"torch", "mlflow", "textual", "ipywidgets"}),
    (["workbench.tui.app"], {"torch", "mlflow", "ipywidgets"}),
    (["workbench.notebook"], {"torch", "mlflow", "ipywidgets", "textual"}),
    (["workbench.notebook.app", "workbench.notebook.figures"], {"torch", "mlflow", "textual"}),
])
def test_what_a_face_paints_from_imports_no_torch_mlflow_or_other_toolkit(modules, absent):
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(set({sorted(absent)!r}) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
