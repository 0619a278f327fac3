"""Checkpoints: atomic write, weights_only load, clear refusals, RNG capture/restore."""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from openpose_lite.config import Config, config_from_dict, config_to_dict
from openpose_lite.models.state_dict import read_torch_file
from openpose_lite.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_training_state,
    read_training_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_training_state,
    weights_are_finite,
)


class _NotData:
    """A custom class: pickling it would let a file run code on load."""

    def __init__(self) -> None:
        self.value = 1


def _model_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2).state_dict()


def test_save_then_weights_only_load_round_trips(tmp_path):
    state = _model_state()
    cfg = Config()
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4])
    path = save_checkpoint(
        tmp_path / "ckpt.pt", model_state=state, config=config_to_dict(cfg),
        optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=3,
        best_ap=np.float64(0.25), per_kp=np.arange(3.0), rng=capture_rng_state(),
    )
    # The raw file loads with torch's own strict loader: it is data only.
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 3
    data = load_checkpoint(path)
    for key, value in state.items():
        assert torch.equal(data["model"][key], value)
    assert config_from_dict(data["config"]) == cfg
    assert data["best_ap"] == 0.25 and isinstance(data["best_ap"], float)
    assert torch.equal(data["per_kp"], torch.arange(3.0, dtype=torch.float64))
    opt.load_state_dict(data["optimizer"])
    sched.load_state_dict(data["scheduler"])  # MultiStepLR keeps a Counter: must survive
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # the temp file was renamed away


def test_save_replaces_existing_file_atomically(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model_state=_model_state(), config={}, epoch=1)
    save_checkpoint(path, model_state=_model_state(), config={}, epoch=2)
    assert load_checkpoint(path)["epoch"] == 2


def test_failed_save_leaves_previous_checkpoint_and_no_temp(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model_state=_model_state(), config={}, epoch=1)
    with pytest.raises(ValueError, match="not plain data"):
        save_checkpoint(path, model_state=_model_state(), config={}, epoch=2, junk={"a": [_NotData()]})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_non_plain_extra_is_refused_naming_its_key(tmp_path):
    with pytest.raises(ValueError, match=r"junk\['a'\]\[0\]"):
        save_checkpoint(tmp_path / "c.pt", model_state=_model_state(), config={}, junk={"a": [_NotData()]})


def test_reserved_extra_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "c.pt", model_state=_model_state(), config={}, format="x")


def test_loader_refuses_pickled_custom_object(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": OrderedDict(), "config": {}, "payload": _NotData()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(path)


def test_loader_refuses_garbage_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage)


def test_loader_requires_config(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(_model_state(), path)  # a bare state dict is not a checkpoint
    with pytest.raises(ValueError, match="no 'config'"):
        load_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def _draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist())


def test_rng_capture_restore_reproduces_draws(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leave a cached gaussian in python's state
    np.random.randn()
    state = capture_rng_state()
    expected = _draws()
    # Through a checkpoint, to prove the state is plain data that weights_only accepts.
    path = save_checkpoint(tmp_path / "c.pt", model_state={}, config={}, rng=state)
    _draws()
    _draws()
    restore_rng_state(load_checkpoint(path)["rng"])
    assert _draws() == expected


def test_restore_rejects_malformed_state():
    with pytest.raises(ValueError, match="RNG state"):
        restore_rng_state({"python": {}})


def test_a_folder_random_bytes_or_text_are_refused_in_one_line_naming_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", model_state=_model_state(), config={})
    with pytest.raises(ValueError, match=r"is a folder, expected a checkpoint; did you mean .*best\.pt"):
        load_checkpoint(run)
    for name, data in (("random.pt", np.random.default_rng(0).bytes(4096)), ("text.pt", b"hello\nworld\n")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=name) as refused:
            read_torch_file(tmp_path / name)
        assert "\n" not in str(refused.value) and "file an issue" not in str(refused.value)


def test_resuming_the_state_of_another_optimizer_type_is_refused_naming_the_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters())
    path = save_training_state(tmp_path / "last.pt", model, adam, None, 1, config_to_dict(Config()))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"last\.pt: the optimizer state was saved by another optimizer than SGD"):
        load_training_state(read_training_checkpoint(path), model, sgd, where=str(path))
    with pytest.raises(ValueError, match=r"last\.pt: the model state does not fit this model"):
        load_training_state(read_training_checkpoint(path), torch.nn.Linear(4, 2),
                            torch.optim.Adam(torch.nn.Linear(4, 2).parameters()), where=str(path))


def test_read_training_checkpoint_refuses_a_checkpoint_that_cannot_resume(tmp_path):
    path = save_checkpoint(tmp_path / "weights.pt", model_state=_model_state(), config={})
    with pytest.raises(ValueError, match="not a training checkpoint"):
        read_training_checkpoint(path)


def test_weights_are_finite_sees_nan_and_inf_in_float_tensors_only():
    state = {"w": torch.ones(3), "steps": torch.tensor(3)}
    assert weights_are_finite(state)
    assert not weights_are_finite({**state, "b": torch.tensor([1.0, float("inf")])})
    assert not weights_are_finite({**state, "b": torch.tensor([float("nan")])})
