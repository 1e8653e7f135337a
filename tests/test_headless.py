"""The core is headless: engine, launcher and tracking never import a face."""
import subprocess
import sys

MODULES = ["workbench", "workbench.spec", "workbench.registry", "workbench.presets", "workbench.engine.run",
           "workbench.engine.loop", "workbench.tracking.mlflow_sink", "workbench.cli",
           "workbench.launch.local", "workbench.launch.study", "workbench.analysis.tables",
           "workbench.analysis.plots", "workbench.analysis.interpolate", "workbench.analysis.flatness"]


def test_core_imports_no_face():
    code = (
        "import sys, importlib\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "from workbench import registry; registry.load_builtins()\n"
        "bad = [m for m in ('textual', 'ipywidgets') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_importing_the_package_and_spec_is_torch_free():
    """Forms and presets must be cheap: the terminal app paints before torch loads."""
    code = "import sys, workbench, workbench.presets; print('torch' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
