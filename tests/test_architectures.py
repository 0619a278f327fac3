"""The architecture table (openpose_lite/architectures.py) is the one place that tells models apart.

What holds it: every reference in the table resolves; every row builds its published network, whose
class names the row; our checkpoints are routed by their stored ``model.arch``, foreign files by the
table's detectors; and no other module asks which kind a model is, neither by ``isinstance`` on a
network class nor by comparing ``model.arch`` with an architecture's name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from openpose_lite.config import Config, ModelConfig, config_from_dict, config_to_dict, load_config
from openpose_lite.inference import BottomUpPredictor, TopDownPredictor
from openpose_lite.architectures import ARCHITECTURES, architecture, architecture_of, resolve
from openpose_lite.factory import build_model
from openpose_lite.network_settings import (
    HourglassSettings,
    HRNetSettings,
    MobileNetPafSettings,
    PafSettings,
    SimpleBaselineSettings,
)
from openpose_lite.models.weights import read_weights
from openpose_lite.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "openpose_lite"
TABLE = PACKAGE / "architectures.py"
ARCH_NAMES = {a.name for a in ARCHITECTURES}


def _references(row) -> list[str]:
    refs = [row.build, *(f for layout in row.layouts for f in (layout.detect, layout.convert))]
    if row.backbone is not None:
        refs += [row.backbone.detect, row.backbone.load]
    return refs


@pytest.mark.parametrize("row", ARCHITECTURES, ids=lambda row: row.name)
def test_every_reference_of_a_row_is_a_function_of_its_model_files(row):
    for ref in _references(row):
        assert callable(resolve(ref)), ref


@pytest.mark.parametrize("row", ARCHITECTURES, ids=lambda row: row.name)
def test_every_row_builds_its_published_network_whose_class_names_the_row(row):
    with torch.device("meta"):  # shapes only
        model = build_model(ModelConfig(arch=row.name))
    assert architecture_of(model) is row and model.arch == row.name
    assert int(model.stride) in (4, 8)
    # A config naming the architecture starts from its published settings, its settings class's defaults.
    cfg = load_config(None, [f"model.arch={row.name}"])
    assert cfg.model == ModelConfig(arch=row.name) and type(cfg.model.settings) is row.settings
    assert cfg.model.resolved_input_norm == row.input_norm


def test_an_unknown_architecture_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="model.arch: expected one of vgg19_paf, mobilenet_paf"):
        ModelConfig(arch="resnet_paf")
    with pytest.raises(ValueError, match="unknown architecture 'resnet_paf'; known: vgg19_paf"):
        architecture("resnet_paf")


def test_each_network_takes_only_its_own_settings_and_a_refusal_names_them(tmp_path):
    cfg = load_config(None, ["model.arch=hrnet", "model.width=8", "model.blocks=1"])
    assert cfg.model.settings == HRNetSettings(width=8, blocks=1)
    assert config_to_dict(cfg)["model"] == {"arch": "hrnet", "width": 8, "blocks": 1, "init": "cmu", "input_norm": None}
    assert architecture("hrnet").describe(cfg.model) == "hrnet (width 8, blocks 1)"
    with pytest.raises(ValueError, match="model.width: not a setting of vgg19_paf; its model keys: arch, num_stages, "
                                         "stage_channels, width_mult, init, input_norm"):
        load_config(None, ["model.width=8"])
    # The flat keys of the earlier single section are refused in a file, naming today's key.
    path = tmp_path / "hourglass.yaml"
    path.write_text("model:\n  arch: hourglass\n  num_stages: 2\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: unknown key model.num_stages; "
                                         "valid keys of 'model': arch, stacks, init, input_norm"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown key model.hrnet_width; did you mean model.width"):
        load_config(None, ["model.arch=hrnet", "model.hrnet_width=8"])
    with pytest.raises(ValueError, match=r"model.settings: expected a HRNetSettings \(the settings of hrnet\)"):
        ModelConfig(arch="hrnet", settings=PafSettings())


# The ``model`` section that checkpoints of the earlier release store: one flat union of every network's keys.
_FLAT = {"arch": "vgg19_paf", "num_stages": 6, "stage_channels": 128, "width_mult": 1.0, "hrnet_width": 32,
         "hrnet_blocks": 4, "depth": 50, "init": "cmu", "input_norm": None}


@pytest.mark.parametrize("flat, settings", [
    ({"arch": "hrnet", "hrnet_width": 8, "hrnet_blocks": 1}, HRNetSettings(width=8, blocks=1)),
    ({"arch": "mobilenet_paf", "num_stages": 3, "stage_channels": 16, "width_mult": 0.125},
     MobileNetPafSettings(num_stages=3, stage_channels=16, width_mult=0.125)),
    ({"num_stages": 2, "stage_channels": 16, "width_mult": 0.125},
     PafSettings(num_stages=2, stage_channels=16, width_mult=0.125)),
], ids=["hrnet", "mobilenet_paf", "vgg19_paf"])
def test_a_checkpoint_storing_the_flat_model_section_loads_with_its_network_settings(tmp_path, flat, settings):
    stored = {**config_to_dict(Config()), "model": {**_FLAT, **flat}}
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=stored["model"]["arch"], settings=settings))
    path = save_checkpoint(tmp_path / "flat.pt", model_state=model.state_dict(), config=stored)
    loaded = read_weights(path)
    assert loaded.ours and loaded.config.model == ModelConfig(arch=stored["model"]["arch"], settings=settings)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    # ... and as the base a resumed run starts from.
    assert load_config(None, ["train.epochs=3"], base=stored).model.settings == settings


def test_the_flat_hourglass_stage_count_becomes_its_stacks():
    stored = {"model": {**_FLAT, "arch": "hourglass", "num_stages": 2}}
    assert config_from_dict(stored).model.settings == HourglassSettings(stacks=2)


def test_our_checkpoints_are_routed_by_their_stored_arch_not_by_their_keys(tmp_path):
    # Our HRNet checkpoints keep the official key names, so only the stored config tells them apart
    # from an official file: they must run in our convention, the official file in the reference's.
    cfg = load_config(None, ["model.arch=hrnet", "model.width=8", "model.blocks=1"])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    ours, official = tmp_path / "ours.pt", tmp_path / "official.pth"
    save_checkpoint(ours, model_state=model.state_dict(), config=config_to_dict(cfg))
    torch.save(model.state_dict(), official)
    mine, theirs = read_weights(ours), read_weights(official)
    assert mine.ours and mine.architecture.name == "hrnet" and mine.config.topdown.convention == "openpose_lite"
    assert not theirs.ours and theirs.layout.name == "hrnet_official"
    assert theirs.config.topdown.convention == "hrnet" and theirs.config.model.settings.width == 8
    for name, tensor in mine.model.state_dict().items():
        assert torch.equal(tensor, theirs.model.state_dict()[name]), name


def test_each_predictor_refuses_the_other_branch_by_the_table(tmp_path):
    files = {}
    for arch, sizes in (("hrnet", ["model.width=8", "model.blocks=1"]), ("vgg19_paf", ["model.width_mult=0.125"])):
        cfg = load_config(None, [f"model.arch={arch}", *sizes])
        files[arch] = save_checkpoint(tmp_path / f"{arch}.pt", model_state=build_model(cfg.model).state_dict(),
                                      config=config_to_dict(cfg))
    with pytest.raises(ValueError, match=r"hrnet.pt: HRNet.*\(hrnet\) is a top-down model, which TopDownPredictor "
                                         r"runs, not BottomUpPredictor"):
        BottomUpPredictor.from_weights(files["hrnet"], device="cpu")
    with pytest.raises(ValueError, match=r"OpenPose.*\(vgg19_paf\) is a bottom-up model, which BottomUpPredictor runs"):
        TopDownPredictor.from_checkpoint(files["vgg19_paf"], device="cpu")


# ------------------------------------------------------------------ nothing else tells models apart
def _network_classes() -> set[str]:
    """The names of the classes the model files define that carry an ``arch`` (the networks)."""
    names = set()
    for path in (PACKAGE / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(s, ast.Assign) and any(getattr(t, "id", None) == "arch" for t in s.targets)
                    for s in node.body):
                names.add(node.name)
    return names


def _sources() -> list[Path]:
    return [*sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")), ROOT / "train_vgg19.py"]


def _arch_literals(node: ast.AST) -> list[str]:
    """Architecture names written as string literals inside ``node`` (a comparison's operands)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in ARCH_NAMES]


def _violations(paths: list[Path], classes: set[str]) -> list[str]:
    """``isinstance`` on a network class, and comparisons or dict keys with architecture names, outside the table."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) > 1 else set()
                if named & classes:
                    found.append(f"{path.name}:{node.lineno} isinstance on {sorted(named & classes)}")
            if path == TABLE:
                continue
            if isinstance(node, ast.Compare) and _arch_literals(node):
                found.append(f"{path.name}:{node.lineno} compares with {_arch_literals(node)}")
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value in ARCH_NAMES for k in node.keys):
                found.append(f"{path.name}:{node.lineno} a dict keyed by architecture names")
    return found


def test_no_module_asks_which_network_a_model_is_outside_the_table():
    classes = _network_classes()
    assert {"VGG19PafNet", "MobileNetPafNet", "HRNet"} <= classes
    assert not _violations(_sources(), classes)


def test_the_check_above_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(model, cfg):\n    if isinstance(model, HRNet) or cfg.model.arch == 'hrnet':\n"
                   "        return {'vgg19_paf': 1}\n")
    assert len(_violations([bad], _network_classes())) == 3


def test_trunk_and_start_files_of_another_architecture_are_named_for_what_they_are(tmp_path):
    from openpose_lite.models.weights import init_from_weights, load_backbone

    with torch.device("meta"):
        resnet = {k: v.shape for k, v in build_model(ModelConfig(arch="simple_baseline", settings=SimpleBaselineSettings(depth=18))).state_dict().items()
                  if not k.startswith(("deconv_layers", "final_layer"))}
    files = {"resnet18.pth": {**resnet, "fc.weight": (1000, 512), "fc.bias": (1000,)},
             "mobilenet_sgd.pth.tar": {"model.0.0.weight": (32, 3, 3, 3), "fc.weight": (1000, 1024)}}
    vgg = build_model(ModelConfig(settings=PafSettings(num_stages=1, stage_channels=8, width_mult=0.125)))
    for name, shapes in files.items():
        path = tmp_path / name
        torch.save({k: torch.zeros(s) for k, s in shapes.items()}, path)
        with pytest.raises(ValueError) as refused:
            load_backbone(vgg, path)
        message = str(refused.value)
        assert message.startswith(f"{path}: model.arch vgg19_paf starts from torchvision's ImageNet vgg19 file")
        trunk_of = "simple_baseline" if name.startswith("resnet") else "mobilenet_paf"
        assert f"the trunk of model.arch {trunk_of}" in message and "vgg19_bn" not in message
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: holds an ImageNet classification network"):
            init_from_weights(vgg, path)
