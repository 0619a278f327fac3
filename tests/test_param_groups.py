"""Per-parameter learning rates and weight decay, held to the two recipes they come from.

Lightweight OpenPose (Daniil-Osokin/lightweight-human-pose-estimation.pytorch, ``train.py``,
``train``): Adam over explicit groups, base lr ``base_lr``, ``weight_decay=5e-4``:

    trunk (net.model):   conv weights lr x1 (decay), depthwise conv weights x1 no decay,
                         BN weights x1 no decay, BN biases x2 no decay
    cpm:                 conv weights x1 (decay), conv biases x2 no decay, depthwise weights x1 no decay
    initial_stage:       conv weights x1 (decay), conv biases x2 no decay
    refinement_stages:   conv weights x4 (decay), conv biases x8 no decay,
                         BN weights x1 no decay, BN biases x2 no decay

(``get_parameters_conv`` takes the non-depthwise convs, ``get_parameters_conv_depthwise`` the
convs with ``groups == in_channels``, ``get_parameters_bn`` the BatchNorm layers; the trunk's
convs have no bias.) CMU (ZheC/Realtime_Multi-Person_Pose_Estimation, ``training/setLayers.py``,
``setLayers_twoBranches`` with ``lr_mult_distro = [1.0, 1.0, 4.0, 1]``): every conv gets
``param=[dict(lr_mult=lr_m, decay_mult=1), dict(lr_mult=lr_m*2, decay_mult=0)]`` with ``lr_m``
1 for the VGG layers, the CPM and stage 1, and 4 for the ``Mconv`` layers of stages 2-6.

The expected values below are those tables, written out per parameter name; ours must match.
"""

from __future__ import annotations

import pytest
import torch

from openpose_lite.config import TrainConfig
from openpose_lite.models.mobilenet_paf import build_mobilenet_paf
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.training.optim import (
    apply_train_settings,
    build_optimizer,
    build_scheduler,
    current_lr,
)

LIGHTWEIGHT_RECIPE = TrainConfig(optimizer="adam", lr=4e-5, weight_decay=5e-4, refinement_lr_mult=4.0,
                                 bias_lr_mult=2.0, no_decay=("bias", "norm", "depthwise"))
CMU_RECIPE = TrainConfig(refinement_lr_mult=4.0, bias_lr_mult=2.0, no_decay=("bias",))


def _lightweight_table(model) -> dict[str, tuple[float, float]]:
    """name -> (lr multiplier, decays?) as the reference's train.py groups them."""
    expected = {}
    depthwise = {f"{name}.weight" for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels}
    bn = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
          for p in ("weight", "bias")}
    for name, _ in model.named_parameters():
        part = name.split(".")[0]
        if name in bn:
            expected[name] = (2.0 if name.endswith("bias") else 1.0, False)
        elif name in depthwise:
            expected[name] = (1.0, False)
        elif part == "refinement_stages":
            expected[name] = (8.0, False) if name.endswith("bias") else (4.0, True)
        else:
            expected[name] = (2.0, False) if name.endswith("bias") else (1.0, True)
    return expected


def _ours(model, train: TrainConfig) -> dict[str, tuple[float, float]]:
    optimizer = build_optimizer(model, train)
    by_id = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            by_id[id(p)] = (round(group["lr"] / train.lr, 9), group["weight_decay"] > 0)
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_lightweight_groups_equal_the_reference_train_py():
    model = build_mobilenet_paf(num_refinement_stages=1, num_channels=16, width_mult=0.25)
    expected = _lightweight_table(model)
    assert _ours(model, LIGHTWEIGHT_RECIPE) == expected
    kinds = {v for v in expected.values()}
    assert kinds == {(1.0, True), (1.0, False), (2.0, False), (4.0, True), (8.0, False)}  # every row of the table


def test_cmu_groups_equal_the_caffe_prototxt():
    model = build_vgg19_paf(num_stages=3, stage_channels=8, width_mult=0.125)
    ours = _ours(model, CMU_RECIPE)
    for name, value in ours.items():
        stage = int(name.split(".")[1]) if name.startswith("stages.") else None
        mult = 4.0 if stage is not None and stage >= 1 else 1.0
        expected = (2.0 * mult, False) if name.endswith("bias") else (mult, True)
        assert value == expected, name


def test_default_train_config_is_one_plain_group():
    model = build_vgg19_paf(num_stages=2, stage_channels=8, width_mult=0.125)
    optimizer = build_optimizer(model, TrainConfig())
    assert len(optimizer.param_groups) == 1  # checkpoints written before the groups existed still resume
    assert optimizer.param_groups[0]["weight_decay"] == TrainConfig().weight_decay


def test_a_new_base_lr_on_resume_keeps_every_groups_multiplier_and_the_decays_done():
    model = build_mobilenet_paf(num_refinement_stages=1, num_channels=16, width_mult=0.25)
    stored = TrainConfig(**{**LIGHTWEIGHT_RECIPE.__dict__, "step_milestones": (1,), "gamma": 0.5})
    optimizer = build_optimizer(model, stored)
    scheduler = build_scheduler(optimizer, stored)
    optimizer.step()
    scheduler.step()  # one decay: every group at half its rate
    new = TrainConfig(**{**stored.__dict__, "lr": 8e-5, "weight_decay": 1e-3})
    apply_train_settings(optimizer, scheduler, stored, new)
    assert current_lr(optimizer) == pytest.approx(8e-5 * 0.5)
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(8e-5 * 0.5 * group["lr_mult"])
        assert group["weight_decay"] == pytest.approx(1e-3 * group["decay_mult"])
    assert scheduler.base_lrs == pytest.approx([8e-5 * g["lr_mult"] for g in optimizer.param_groups])
