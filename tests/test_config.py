"""Config: YAML deltas, strict keys and types, overrides, dict round trip, atomic save."""

from __future__ import annotations

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
    assert cfg.model.num_stages == 6 and cfg.train.lr == pytest.approx(4e-5)


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
    plain["model"]["depth"] = 3
    with pytest.raises(ValueError, match="model.depth"):
        config_from_dict(plain, where="ckpt.pt")


def test_save_config_round_trips_through_load(tmp_path):
    cfg = load_config(None, ["train.epochs=11", "model.width_mult=0.5"])
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    assert load_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left


@pytest.mark.parametrize("name", ["vgg19_coco.yaml", "vgg19_synthetic_cpu.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.crop_size % cfg.codec.stride == 0
