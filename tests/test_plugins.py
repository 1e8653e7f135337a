"""Plugin discovery: folder plugins, entry points, and broken plugins that must not
stop the app.

Every test loads its plugins inside ``plugins.isolated()`` (the ``plugin_dir``
fixture), with ``WORKBENCH_PLUGINS`` pointing at a temporary folder and the
machine's installed entry points hidden, so nothing leaks into other tests.
"""
from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from workbench import cli, plugins, registry
from workbench.spec import SpecError

GOOD = """
from torch import nn
from workbench.registry import MODELS


@MODELS.register("tmp_mlp", help="A test MLP", task="image")
def tmp_mlp(info, hidden: int = 16):
    c, h, w = info.input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, info.num_classes))
"""

BROKEN = {
    # registers one entry, then raises: the entry must be removed again
    "boom.py": """
        from workbench.registry import MODELS

        @MODELS.register("boom_net")
        def boom_net(info):
            raise AssertionError("never built")

        raise RuntimeError("boom at import\\nsecond line")
    """,
    "syntax_err.py": "def broken(:\n    pass\n",
    # a fine entry, then a name the built-ins own
    "clash.py": """
        from workbench.registry import MODELS, SCHEDULES

        @SCHEDULES.register("clash_ok")
        def clash_ok(spec, shape):
            return lambda it: spec.lr

        @MODELS.register("toy_cnn")
        def toy_cnn(info):
            pass
    """,
    "exits.py": "import sys\nsys.exit(3)\n",
    "needs_missing.py": "import workbench_no_such_module_xyz\n",
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """An empty plugins folder; registries, STATUS and sys.modules restored afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setenv("WORKBENCH_PLUGINS", str(folder))
    monkeypatch.setattr(plugins, "entry_points", lambda group=None: [])
    with plugins.isolated():
        yield folder


def by_name(statuses) -> dict[str, plugins.PluginStatus]:
    return {s.name: s for s in statuses}


def test_folder_plugin_model_is_used_by_a_run(plugin_dir):
    import workbench

    write(plugin_dir, "good.py", GOOD)
    st = by_name(plugins.reload_plugins())["good"]
    assert st.ok and st.registered == ("model:tmp_mlp",)
    entry = registry.MODELS.get("tmp_mlp")
    assert entry.source == "plugin good" and entry.help == "A test MLP" and "hidden" in entry.options()
    result = workbench.run({
        "device": "cpu", "threads": 1,
        "model": {"name": "tmp_mlp", "options": {"hidden": 8}},
        "dataset": {"name": "synthetic", "options": {"n_train": 256, "n_test": 64, "channels": 1, "size": 8}},
        "averaging": {"variant": "swa", "start": 1},
        "budget": {"epochs": 2, "batch_size": 64},
        "tracking": {"enabled": False},
    })
    assert result.run_id is None
    assert {"final/backbone_test_acc", "final/average_test_acc"} <= set(result.metrics)
    assert "1.weight" in result.average_state_dict  # the plugin's Sequential was trained


def test_isolated_restores_registries_status_and_modules(tmp_path, monkeypatch):
    registry.load_builtins()
    before = {r.kind: r.names() for r in plugins._registries()}
    status_before = list(plugins.STATUS)
    write(tmp_path, "good.py", GOOD)
    monkeypatch.setenv("WORKBENCH_PLUGINS", str(tmp_path))
    monkeypatch.setattr(plugins, "entry_points", lambda group=None: [])
    with plugins.isolated():
        plugins.reload_plugins()
        assert "tmp_mlp" in registry.MODELS and "workbench_plugin_good" in sys.modules
    assert "tmp_mlp" not in registry.MODELS
    assert {r.kind: r.names() for r in plugins._registries()} == before
    assert plugins.STATUS == status_before
    assert "workbench_plugin_good" not in sys.modules


def test_broken_plugins_are_listed_and_the_rest_works(plugin_dir, capsys):
    for name, text in BROKEN.items():
        write(plugin_dir, name, text)
    write(plugin_dir, "good.py", GOOD)
    # a package plugin with a relative import
    write(plugin_dir, "pkg_plugin/__init__.py", "from . import sched  # noqa\n")
    write(plugin_dir, "pkg_plugin/sched.py", """
        from workbench.registry import SCHEDULES

        @SCHEDULES.register("tmp_half", help="lr / 2")
        def tmp_half(spec, shape):
            return lambda it: spec.lr / 2
    """)
    # never loaded: private, not Python, a folder without __init__.py
    write(plugin_dir, "_private.py", "raise RuntimeError('must not be imported')\n")
    write(plugin_dir, "notes.txt", "not a plugin")
    write(plugin_dir, "no_init/mod.py", "raise RuntimeError('must not be imported')\n")

    st = by_name(plugins.reload_plugins())
    assert set(st) == {"boom", "syntax_err", "clash", "exits", "needs_missing", "good", "pkg_plugin"}
    assert st["good"].ok and st["pkg_plugin"].ok and st["pkg_plugin"].registered == ("schedule:tmp_half",)
    assert st["boom"].error == "RuntimeError: boom at import (boom.py:8)"
    assert st["syntax_err"].error.startswith("SyntaxError: ") and "(syntax_err.py, line 1)" in st["syntax_err"].error
    assert st["clash"].error.startswith("ValueError: model 'toy_cnn' is already registered (by builtin)")
    assert st["exits"].error.startswith("SystemExit: 3")
    assert st["needs_missing"].error.startswith("ModuleNotFoundError: No module named 'workbench_no_such_module_xyz'")
    for s in st.values():
        assert "\n" not in s.error
    # partial registrations are gone; the built-in that was clashed with is intact
    assert "boom_net" not in registry.MODELS and "clash_ok" not in registry.SCHEDULES
    assert registry.MODELS.get("toy_cnn").source == "builtin"
    assert not any(k.startswith("workbench_plugin_boom") for k in sys.modules)

    assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7
    failed = [ln for ln in lines if ln.startswith("FAILED")]
    assert len(failed) == 5 and any("boom" in ln and "RuntimeError: boom at import" in ln for ln in failed)
    assert any(ln.startswith("ok") and "good" in ln and "model:tmp_mlp" in ln for ln in lines)
    assert plugins.summary() == "7 plugins, 5 FAILED (boom, clash, exits, needs_missing, syntax_err)"

    # the rest of the app works, plugin entries included
    from workbench.presets import load_spec

    spec = load_spec("quickstart", overrides=["schedule.name=tmp_half", "model.name=tmp_mlp"])
    assert spec.schedule.name == "tmp_half"
    with pytest.raises(SpecError, match="model.name: unknown model 'boom_net'"):
        load_spec("quickstart", overrides=["model.name=boom_net"])


def test_reload_is_idempotent(plugin_dir):
    write(plugin_dir, "good.py", GOOD)
    write(plugin_dir, "pkg_plugin/__init__.py", "from .inner import *  # noqa\n")
    write(plugin_dir, "pkg_plugin/inner.py", "from workbench.registry import TASKS\n"
                                             "@TASKS.register('tmp_task')\nclass T:\n    pass\n")
    first = [(s.name, s.ok, s.registered) for s in plugins.reload_plugins()]
    second = [(s.name, s.ok, s.registered) for s in plugins.reload_plugins()]
    assert first == second and all(ok for _, ok, _ in first)
    assert plugins.load_plugins() is plugins.STATUS and len(plugins.STATUS) == 2  # once per process


def test_same_name_in_two_folders(tmp_path, plugin_dir, monkeypatch):
    other = tmp_path / "more"
    write(plugin_dir, "dup.py", GOOD)
    write(other, "dup.py", GOOD.replace("tmp_mlp", "tmp_mlp2"))
    write(other, "extra.py", GOOD.replace("tmp_mlp", "tmp_mlp3"))
    monkeypatch.setenv("WORKBENCH_PLUGINS", f"{plugin_dir}{__import__('os').pathsep}{other}")
    assert plugins.plugin_dirs() == [plugin_dir, other]
    statuses = plugins.reload_plugins()
    assert [(s.name, s.ok) for s in statuses] == [("dup", True), ("dup", False), ("extra", True)]
    assert "already loaded from" in statuses[1].error
    assert "tmp_mlp2" not in registry.MODELS and "tmp_mlp3" in registry.MODELS


def test_entry_point_plugins(tmp_path, plugin_dir, monkeypatch):
    site = tmp_path / "site"
    write(site, "wb_ep_demo.py", GOOD.replace("tmp_mlp", "ep_mlp"))
    write(site, "wb_ep_fn.py", """
        def register():
            from workbench.engine.plan import _swa
            from workbench.registry import AVERAGERS

            AVERAGERS.register("ep_swa", help="SWA, from an entry point")(_swa)
    """)
    write(site, "wb_ep_bad.py", "raise ImportError('needs a package that is not installed')\n")
    write(site, "wb_ep_pkg/__init__.py", "")  # a distribution's package: its folder is the plugin's
    write(site, "wb_ep_pkg/plugin.py", GOOD.replace("tmp_mlp", "ep_pkg_mlp"))
    write(site, "wb_ep_pkg/preset.toml", 'description = "shipped with an installed plugin"\n')
    monkeypatch.syspath_prepend(str(site))
    eps = [
        EntryPoint("demo", "wb_ep_demo", plugins.GROUP),
        EntryPoint("fn", "wb_ep_fn:register", plugins.GROUP),
        EntryPoint("bad", "wb_ep_bad", plugins.GROUP),
        EntryPoint("missing", "wb_ep_not_installed", plugins.GROUP),
        EntryPoint("pkg", "wb_ep_pkg.plugin", plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group=None: eps if group == plugins.GROUP else [])
    st = by_name(plugins.reload_plugins())
    assert st["demo"].ok and st["demo"].registered == ("model:ep_mlp",)
    assert st["demo"].source == "entry point wb_ep_demo"
    assert st["fn"].ok and st["fn"].registered == ("averaging variant:ep_swa",)
    assert st["bad"].error == "ImportError: needs a package that is not installed (wb_ep_bad.py:1)"
    assert st["missing"].error.startswith("ModuleNotFoundError")
    assert registry.AVERAGERS.get("ep_swa").source == "plugin fn"
    assert st["pkg"].ok and st["pkg"].registered == ("model:ep_pkg_mlp",) and st["pkg"].module == "wb_ep_pkg"
    assert plugins.preset_files()["preset"] == site / "wb_ep_pkg" / "preset.toml"
    # a reload imports the entry-point modules again (their decorators run again, no clash)
    again = by_name(plugins.reload_plugins())
    assert all(again[n].ok for n in ("demo", "fn", "pkg")) and "ep_pkg_mlp" in registry.MODELS


def test_no_plugins_message(plugin_dir, capsys, monkeypatch):
    plugins.reload_plugins()
    assert cli.main(["plugins"]) == 0
    assert capsys.readouterr().out.startswith("no plugins found (looked in ")
    assert plugins.summary() is None
    monkeypatch.setenv("WORKBENCH_PLUGINS", str(plugin_dir / "typo"))
    (st,) = plugins.reload_plugins()
    assert not st.ok and st.error == f"WORKBENCH_PLUGINS: {plugin_dir / 'typo'} is not a folder"


def test_repository_plugin_loads_through_its_entry_point_never_from_the_current_folder(monkeypatch, tmp_path):
    # A plugins/ folder in the current directory is not searched: what loads must not
    # depend on where a command runs. The shipped MRPC plugin comes from its entry point.
    write(tmp_path / "plugins", "stray.py", GOOD.replace("tmp_mlp", "stray_mlp"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_PLUGINS", raising=False)
    with plugins.isolated():
        st = by_name(plugins.reload_plugins())
        assert "stray" not in st and "stray_mlp" not in registry.MODELS
        assert st["mrpc_roberta"].ok, st["mrpc_roberta"].error
        assert st["mrpc_roberta"].source == "entry point mrpc_roberta"
        assert set(st["mrpc_roberta"].registered) == {"dataset:mrpc", "model:roberta", "task:text"}
        assert plugins.preset_files()["mrpc"].resolve() == (plugins.REPO_PLUGINS / "mrpc_roberta" / "mrpc.toml").resolve()
        assert plugins.module("mrpc_roberta").__name__ == "mrpc_roberta"
        with pytest.raises(KeyError, match="plugin 'nope' is not loaded"):
            plugins.module("nope")


def test_plugin_presets_run_by_name_and_are_listed(plugin_dir, capsys):
    from workbench.presets import load_spec, preset_names

    pkg = plugin_dir / "tmp_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(GOOD)
    (pkg / "tmp_digits.toml").write_text(textwrap.dedent('''\
        description = "a plugin preset"
        extends = "quickstart"
        [model]
        name = "tmp_mlp"
        [scales.smoke]
        "budget.epochs" = 3
        '''))
    (pkg / "quickstart.toml").write_text('description = "shadowed"\n')
    plugins.reload_plugins()
    spec = load_spec("tmp_digits", scale="smoke")  # by name, extending a built-in preset
    assert spec.model.name == "tmp_mlp" and spec.budget.epochs == 3 and spec.preset == "tmp_digits"
    assert load_spec("quickstart").model.name != "tmp_mlp"  # a built-in name wins
    assert "tmp_digits" in preset_names()
    assert cli.main(["presets"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tmp_digits"))
    assert line.split(None, 1)[1] == "[plugin tmp_pkg] a plugin preset"
    with pytest.raises(SpecError, match="unknown preset 'nope'"):
        load_spec("nope")
