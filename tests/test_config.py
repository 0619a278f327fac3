"""Config: YAML deltas, strict keys and types, overrides, dict round trip, atomic save."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from openpose_lite.config import (
    Config,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_cmu_paper():
    cfg = load_config(None)
    assert (cfg.codec.stride, cfg.codec.sigma_px, cfg.data.crop_size) == (8, 7.0, 368)
    assert cfg.model.settings.num_stages == 6 and cfg.train.lr == pytest.approx(4e-5)


def test_yaml_file_holds_only_deltas(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  epochs: 3\n"))
    assert cfg.train.epochs == 3
    assert cfg.train.batch_size == Config().train.batch_size  # untouched keys keep defaults


def test_unknown_key_error_names_key_and_file(tmp_path):
    path = _write(tmp_path, "train:\n  epohcs: 3\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert "train.epohcs" in str(info.value) and str(path) in str(info.value)


def test_unknown_section_error_names_section(tmp_path):
    with pytest.raises(ValueError, match="'trainer'"):
        load_config(_write(tmp_path, "trainer:\n  epochs: 3\n"))


def test_wrong_type_error_names_field_and_file(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: many\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert "train.epochs" in str(info.value) and str(path) in str(info.value)


def test_int_coerced_to_float_and_list_to_tuple(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  lr: 1\n  step_milestones: [2, 4]\n"))
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    assert cfg.train.step_milestones == (2, 4)


def test_yaml11_exponent_without_dot_is_read_as_float(tmp_path):
    # PyYAML loads "1e-4" as the string "1e-4"; the config must still take it as a number.
    cfg = load_config(_write(tmp_path, "train:\n  lr: 1e-4\n"))
    assert cfg.train.lr == pytest.approx(1e-4)


def test_bool_is_not_accepted_as_number():
    with pytest.raises(ValueError, match="train.lr"):
        TrainConfig(lr=True)  # type: ignore[arg-type]


def test_choice_error_lists_valid_values():
    with pytest.raises(ValueError) as info:
        load_config(None, ["train.optimizer=rmsprop"])
    assert "'sgd'" in str(info.value) and "'adam'" in str(info.value)


def test_overrides_parse_values_as_yaml():
    assert parse_override("train.lr=1e-3") == ("train", "lr", "1e-3")
    assert parse_override("train.step_milestones=[3, 6]") == ("train", "step_milestones", [3, 6])
    assert parse_override("data.train_ann=null") == ("data", "train_ann", None)
    cfg = load_config(None, ["train.lr=1e-3", "train.amp=false", "train.step_milestones=[3,6]"])
    assert (cfg.train.lr, cfg.train.amp, cfg.train.step_milestones) == (1e-3, False, (3, 6))


def test_overrides_apply_after_file(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  epochs: 3\n"), ["train.epochs=7"])
    assert cfg.train.epochs == 7


@pytest.mark.parametrize("text", ["train.lr", "lr=1", "a.b.c=1", "train.=1"])
def test_malformed_override_is_rejected(text):
    with pytest.raises(ValueError, match="override"):
        load_config(None, [text])


def test_unknown_override_key_is_named():
    with pytest.raises(ValueError, match="train.learning_rate"):
        load_config(None, ["train.learning_rate=0.1"])


@pytest.mark.parametrize("override, near", [
    ("train.lrr=0.1", "did you mean train.lr?"),  # a near spelling in the section
    ("train.crop_size=64", "did you mean data.crop_size?"),  # the key of another section
    ("trian.lr=0.1", "did you mean 'train'?"),  # a near section
])
def test_an_unknown_key_names_the_near_one_before_listing_the_valid_ones(override, near):
    with pytest.raises(ValueError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert near in message and message.index(near) < message.index("valid ")


def test_an_unknown_key_far_from_every_key_lists_the_valid_ones_only():
    with pytest.raises(ValueError) as info:
        load_config(None, ["train.zzzzqqq=1"])
    assert "did you mean" not in str(info.value) and "valid keys of 'train': epochs" in str(info.value)


def test_paired_paths_may_come_from_separate_overrides():
    cfg = load_config(None, ["data.train_ann=a.json", "data.train_images=imgs"])
    assert (cfg.data.train_ann, cfg.data.train_images) == ("a.json", "imgs")
    with pytest.raises(ValueError, match="train_images"):
        load_config(None, ["data.train_ann=a.json"])


def test_crop_must_be_multiple_of_stride():
    with pytest.raises(ValueError, match="data.crop_size"):
        load_config(None, ["data.crop_size=100"])


def test_dict_round_trip_is_exact_and_plain():
    cfg = load_config(None, ["train.step_milestones=[5,9]", "data.val_ann=v.json", "data.val_images=v"])
    plain = config_to_dict(cfg)
    # Plain containers only, so it survives YAML/JSON and weights_only checkpoints.
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    assert isinstance(plain["train"]["step_milestones"], list)
    assert config_from_dict(plain) == cfg


def test_config_from_dict_is_strict():
    plain = config_to_dict(Config())
    plain["model"]["stage_channels"] = 0
    with pytest.raises(ValueError, match="ckpt.pt: model.stage_channels: expected an integer in"):
        config_from_dict(plain, where="ckpt.pt")
    plain["model"].update(stage_channels=16, width=8)
    with pytest.raises(ValueError, match="ckpt.pt: unknown key model.width"):
        config_from_dict(plain, where="ckpt.pt")


def test_save_config_round_trips_through_load(tmp_path):
    cfg = load_config(None, ["train.epochs=11", "model.width_mult=0.5"])
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    assert load_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left


def _file_values(path: Path) -> dict:
    """section -> key -> value a config file states, after the files it extends (read here as YAML)."""
    data = yaml.safe_load(path.read_text()) or {}
    values = _file_values(path.parent / data.pop("extends")) if "extends" in data else {}
    for section, keys in data.items():
        values.setdefault(section, {}).update(keys)
    return values


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_each_value_reaches_what_is_built_from_it(path):
    import torch

    from openpose_lite.config import build_bottomup_codec, build_topdown_codec
    from openpose_lite.architectures import architecture
    from openpose_lite.factory import build_model
    from openpose_lite.training.optim import build_optimizer

    cfg = load_config(path)
    stated = _file_values(path)
    for section, keys in stated.items():
        for key, value in keys.items():
            assert config_to_dict(cfg)[section][key] == value, f"{path.name}: {section}.{key}"
    assert cfg.data.crop_size % cfg.codec.stride == 0
    # ... and from the config to the objects: the network, the codecs, the optimizer.
    with torch.device("meta"):
        model = build_model(cfg.model)
    assert model.arch == cfg.model.arch
    if architecture(cfg.model.arch).branch == "topdown":
        codec = build_topdown_codec(cfg)
        for key, value in stated.get("topdown", {}).items():
            if hasattr(codec, key):
                assert getattr(codec, key) == (tuple(value) if isinstance(value, list) else value), key
    else:
        settings = cfg.model.settings  # each of its network's settings that the network keeps, as set
        kept = {f.name for f in dataclasses.fields(settings) if hasattr(model, f.name)}
        assert kept and all(getattr(model, name) == getattr(settings, name) for name in kept), kept
        codec = build_bottomup_codec(cfg, skeleton=model.skeleton)
        codec.check_model(model, path.name)
        for key, value in stated.get("codec", {}).items():
            if key != "input_size":  # the predictors' input height, not the codec's
                assert getattr(codec, key) == value, key
    optimizer = build_optimizer(model, cfg.train)
    rates = sorted({round(g["lr"] / cfg.train.lr, 6) for g in optimizer.param_groups})
    assert max(rates) == pytest.approx(max(1.0, cfg.train.bias_lr_mult) * (
        cfg.train.refinement_lr_mult if getattr(model, "num_stages", 1) > 1 else 1.0))


def test_a_config_file_extends_another_and_states_only_its_own_deltas(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 7\n  lr: 1.0e-3\nmodel:\n  num_stages: 2\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\ntrain:\n  epochs: 9\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nmodel:\n  num_stages: 4\n")
    cfg = load_config(tmp_path / "top.yaml", ["train.lr=2e-3"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.settings.num_stages) == (9, 2e-3, 4)


def test_extends_errors_name_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="loops back"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"missing.yaml \(extended by .*c.yaml\)"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: b.yaml\ntrain:\n  nope: 1\n")
    with pytest.raises(ValueError, match="d.yaml"):
        load_config(tmp_path / "d.yaml")
