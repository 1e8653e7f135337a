"""RunSpec: layering, validation messages that name the field, forms, flattening."""
import pytest

from workbench.presets import load_spec, preset_names, read_preset
from workbench.spec import RunSpec, SpecError, apply_overrides, flatten, form_fields, parse_value, to_toml, validate


def test_defaults_validate():
    s = RunSpec()
    assert s.model.name == "toy_cnn" and s.dataset.name == "digits" and s.averaging.variant == "none"


@pytest.mark.parametrize("data,field", [
    ({"averaging": {"variant": "nope"}}, "averaging.variant"),
    ({"model": {"name": "resnet9000"}}, "model.name"),
    ({"budget": {"epochs": 0}}, "budget.epochs"),
    ({"budget": {"epochz": 3}}, "budget.epochz"),
    ({"optimizer": {"name": "rmsprop"}}, "optimizer.name"),
    ({"optimizer": {"momentum": 1.5}}, "optimizer.momentum"),
    ({"schedule": {"lr": -1}}, "schedule.lr"),
    ({"device": "tpu"}, "device"),
    ({"threads": 0}, "threads"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_values_name_the_field_in_one_line(data, field):
    with pytest.raises(SpecError) as err:
        validate(data)
    msg = str(err.value)
    assert msg.startswith(field + ":"), msg
    assert "\n" not in msg


def test_unknown_variant_lists_the_choices():
    with pytest.raises(SpecError, match=r"choose one of: .*dswa.*pswa.*swa"):
        validate({"averaging": {"variant": "nope"}})


def test_overrides_parse_toml_values_and_win_over_the_preset():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value("cifar10") == "cifar10"
    s = load_spec("quickstart", overrides=["budget.epochs=12", "averaging.variant=swa", "averaging.start=6"])
    assert s.budget.epochs == 12 and s.averaging.variant == "swa" and s.preset == "quickstart"
    with pytest.raises(SpecError, match=r"^budget\.epochs: "):
        load_spec("quickstart", overrides=["budget.epochs=many"])
    with pytest.raises(SpecError, match="expected --set section.key=value"):
        apply_overrides({}, ["budget.epochs"])


def test_every_preset_validates_at_each_of_its_scales_as_a_run_and_as_a_study():
    from workbench.launch.study import load_study

    for name in preset_names():
        data = read_preset(name)
        assert data.get("description"), f"{name} needs a one-line description"
        load_spec(name)
        load_study(name)  # every cell of its grid, factory options included
        for scale in data.get("scales", {}):
            load_spec(name, scale=scale)
            load_study(name, scale=scale)


def test_unknown_factory_options_fail_at_validation():
    with pytest.raises(SpecError, match=r"^model\.options\.widht: unknown option of toy_cnn; options: channels1"):
        validate({"model": {"name": "toy_cnn", "options": {"widht": 2}}})
    with pytest.raises(SpecError, match=r"^dataset\.options\.n_train: unknown option of digits"):
        validate({"dataset": {"name": "digits", "options": {"n_train": 2}}})


def test_scale_tables_and_extends():
    smoke = load_spec("digits-dswa", scale="smoke")
    full = load_spec("digits-dswa")
    assert smoke.budget.epochs < full.budget.epochs
    assert full.schedule.name == "figure6"  # inherited from quickstart
    with pytest.raises(SpecError, match="^--scale: preset quickstart has no scale .huge.; choose one of: paper, smoke"):
        load_spec("quickstart", scale="huge")
    with pytest.raises(SpecError, match="^preset: unknown preset"):
        load_spec("no-such-preset")


def test_flatten_and_toml_round_trip(tmp_path):
    s = load_spec("quickstart")
    flat = flatten(s)
    assert flat["averaging.variant"] == "pswa" and flat["budget.epochs"] == "40" and flat["model.name"] == "toy_cnn"
    path = tmp_path / "spec.toml"
    path.write_text(to_toml(s))
    assert load_spec(str(path)) == s


def test_form_fields_describe_every_leaf_with_types_choices_ranges_and_help():
    fields = {f["path"]: f for f in form_fields()}
    v = fields["averaging.variant"]
    assert v["type"] == "choice" and {"none", "swa", "dswa", "tswa", "kswa", "pswa", "ema"} <= set(v["choices"])
    assert v["choice_help"]["pswa"]
    assert fields["model.name"]["type"] == "choice" and "toy_cnn" in fields["model.name"]["choices"]
    assert fields["optimizer.name"]["choices"] == ["sgd", "adam", "adamw"]
    assert fields["budget.epochs"]["type"] == "int" and fields["budget.epochs"]["ge"] == 1
    assert fields["optimizer.momentum"]["type"] == "float" and fields["optimizer.momentum"]["lt"] == 1.0
    assert fields["dataset.download"]["type"] == "bool"
    assert fields["averaging.start"]["nullable"]
    assert all(f["help"] for f in fields.values())
    sections = [f for f, info in RunSpec.model_fields.items() if hasattr(info.annotation, "model_fields")]
    leaves = sum(len(RunSpec.model_fields[sec].annotation.model_fields) for sec in sections)
    assert len(fields) == leaves + len(RunSpec.model_fields) - len(sections)  # one form field per leaf


def test_an_unknown_study_scale_exits_2_naming_the_scale_and_the_known_ones(tmp_path, capsys, monkeypatch):
    """`workbench study table4 --scale smok` used to run the full-size study (36 runs x 90 epochs)."""
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert main(["study", "table4", "--scale", "smok"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["workbench: --scale: preset table4 has no scale 'smok'; choose one of: paper, smoke "
                   "(paper = the full size)"]
    assert not (tmp_path / "store").exists()
