"""Small inputs that would damage files or exhaust memory: each refused in one line, exit 2, nothing touched.

* a run's lock that is a symbolic link (or a hard link, a FIFO) is refused, and what it names
  keeps its bytes;
* no write replaces a FIFO, a device or a folder at its destination;
* the clean-up after a killed write removes the project's own temporary files only;
* a YAML alias bomb (a config file, an override) or a stored config of shared references is
  refused at its bound, in one line, and messages show values cut short;
* a JSON file that would cost more memory than the bound once parsed is refused as it is read;
* ``export --input-hw`` past the network input's bound is refused before anything runs;
* JSON nested past the bound (``--ann``, ``--skeleton``, ``data.skeleton``, an OpenVINO IR's
  settings) is one line, not a RecursionError.

The runs that a lost bound would let exhaust memory or time run in a subprocess (test_hostile_inputs'
``run_cli_calls``: a timeout, and the growth of the peak resident memory above start-up).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tracemalloc
from pathlib import Path

import pytest
from test_hostile_inputs import GROWTH_LIMIT_KB, error_lines, run_cli_calls
from train_helpers import load_train_script, tiny_args, write_tiny_scenes

from openpose_lite.cli import main
from openpose_lite.config import config_from_dict, load_config
from openpose_lite.io import (
    MAX_JSON_MEMORY_ENV,
    MAX_NESTING_DEPTH,
    JsonShape,
    atomic_write_path,
    read_json,
    stale_temp_files,
    temp_sibling,
    write_json_atomic,
)
from openpose_lite.models.export import export_torchscript
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.params import coerce
from openpose_lite.run_lock import LOCK_NAME, NotALockFileError, check_unlocked, folder_lock
from openpose_lite.training.run_folder import RunFolder

train_vgg19 = load_train_script()
PRECIOUS = b"a month of training"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_scenes(tmp_path_factory.mktemp("scenes"))


def _precious(tmp_path: Path) -> Path:
    path = tmp_path / "precious.pt"
    path.write_bytes(PRECIOUS)
    return path


# ------------------------------------------------------------------------ 1. the lock follows nothing
_NOT_LOCKS = {"symlink": "a symbolic link", "hardlink": "a file with 2 hard links", "fifo": "a FIFO (named pipe)"}


def _plant(lock: Path, kind: str, precious: Path) -> None:
    if kind == "symlink":
        lock.symlink_to(precious)
    elif kind == "hardlink":
        os.link(precious, lock)
    else:
        os.mkfifo(lock)


@pytest.mark.parametrize("kind", sorted(_NOT_LOCKS))
def test_infer_into_a_folder_whose_lock_is_not_a_lock_file_is_refused_and_nothing_is_truncated(
        kind, checkpoint, dataset, tmp_path, capsys):
    precious, out = _precious(tmp_path), tmp_path / "out"
    out.mkdir()
    lock = out / LOCK_NAME
    _plant(lock, kind, precious)
    argv = ["infer", str(dataset / "images" / "000001.jpg"), "--checkpoint", str(checkpoint), "-o", str(out),
            "--overwrite", "--no-progress"]
    assert main(argv) == 2
    line, = error_lines(capsys.readouterr().err)
    assert f"{lock}: is {_NOT_LOCKS[kind]}, not a lock file a run made" in line and "--output" in line
    assert precious.read_bytes() == PRECIOUS and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    for take in (lambda: check_unlocked(out), lambda: folder_lock(out, "a test").__enter__()):
        with pytest.raises(NotALockFileError):
            take()
    assert precious.read_bytes() == PRECIOUS


def test_training_into_a_folder_whose_lock_links_to_a_checkpoint_is_refused_and_the_checkpoint_kept(
        scenes, tmp_path, capsys):
    precious, out = _precious(tmp_path), tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(precious)
    assert train_vgg19.main(tiny_args(scenes, out, "train.epochs=1", "--overwrite")) == 2
    line, = error_lines(capsys.readouterr().err)
    assert f"{out / LOCK_NAME}: is a symbolic link" in line and "--output-dir" in line
    assert precious.read_bytes() == PRECIOUS and [p.name for p in out.iterdir()] == [LOCK_NAME]


# ------------------------------------------------------------------------ 2. only regular files are replaced
def _special_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """A FIFO, a folder and, where this process may make one, a character device like /dev/full."""
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.pt"
    folder.mkdir()
    (folder / "inside.txt").write_text("kept")
    found = [(fifo, "a FIFO (named pipe)"), (folder, "a folder")]
    try:
        os.mknod(tmp_path / "full.pt", stat.S_IFCHR | 0o600, os.makedev(1, 7))  # the numbers of /dev/full
        found.append((tmp_path / "full.pt", "a character device"))
    except (PermissionError, OSError):
        pass  # not root, or no CAP_MKNOD: the FIFO stands for every special file
    return found


def _kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


def test_an_atomic_write_refuses_a_destination_that_is_not_a_regular_file(tmp_path):
    for path, kind in _special_files(tmp_path):
        before, calls = _kind(path), []
        for write in (lambda: atomic_write_path(path, calls.append), lambda: write_json_atomic(path, {"a": 1})):
            with pytest.raises(ValueError) as refused:
                write()
            assert str(refused.value).startswith(f"{path}: is {kind}, not a regular file")
        assert calls == [] and _kind(path) == before and stale_temp_files(path) == []
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "fifo.pt")
    with pytest.raises(ValueError, match="is a FIFO"):
        write_json_atomic(link, [])
    assert link.is_symlink()


def test_export_onto_a_fifo_is_refused_for_every_format_before_the_weights_are_read(checkpoint, tmp_path, capsys):
    xml_bin = tmp_path / "beside.xml"
    os.mkfifo(xml_bin.with_suffix(".bin"))
    cases = [("onnx", tmp_path / "net.onnx", tmp_path / "net.onnx"),
             ("torchscript", tmp_path / "net.torchscript.pt", tmp_path / "net.torchscript.pt"),
             ("openvino", tmp_path / "net.xml", tmp_path / "net.xml"),
             ("openvino", xml_bin, xml_bin.with_suffix(".bin"))]
    for fmt, output, fifo in cases:
        if not fifo.exists():
            os.mkfifo(fifo)
        assert main(["export", "--checkpoint", str(checkpoint), "--format", fmt, "-o", str(output)]) == 2
        line, = error_lines(capsys.readouterr().err)
        assert f"-o {fifo}: is a FIFO (named pipe), not a regular file" in line
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not list(tmp_path.glob(".*"))  # no temporary file either


def test_export_torchscript_refuses_a_device_or_fifo_without_tracing(tmp_path):
    model = build_vgg19_paf(num_stages=1, stage_channels=8, width_mult=0.125)
    for path, kind in _special_files(tmp_path):
        with pytest.raises(ValueError, match=re.escape(f"{path}: is {kind}, not a regular file")):
            export_torchscript(model, path, input_hw=(32, 32))


# ------------------------------------------------------------------------ 3. the clean-up removes its own files only
_USERS = (".results_coco.json.bak", ".images.json.orig", ".000001_keypoints.json.keep")


def test_append_and_overwrite_remove_a_killed_writes_temporary_file_and_never_a_users_dot_file(
        checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    image = [str(dataset / "images" / "000001.jpg"), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"]
    assert main(["infer", *image]) == 0
    for way in ("--append", "--overwrite"):
        for name in _USERS:
            (out / name).write_text("mine")
        stale = temp_sibling(out / "results_coco.json")  # the name a write killed mid-way leaves
        assert stale.name.startswith(".results_coco.json.openpose-lite-tmp-")
        assert main(["infer", *image, way]) == 0
        assert not stale.exists(), way
        assert all((out / name).read_text() == "mine" for name in _USERS), way
    capsys.readouterr()


def test_a_training_folders_clean_up_keeps_backups_beside_its_checkpoints(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    mine = (".last.pt.my_backup", ".best.pt.keep", ".config.yaml.orig", ".metrics.jsonl.2024")
    for name in mine:
        (run.path / name).write_bytes(PRECIOUS)
    stale = [temp_sibling(run.last), temp_sibling(run.best), temp_sibling(run.config)]
    assert sorted(run.remove_stale_temp_files()) == sorted(stale)
    assert sorted(p.name for p in run.path.iterdir()) == sorted(mine)


# ------------------------------------------------------------------------ 4. what a config may expand to
def _alias_bomb(levels: int = 10, width: int = 10) -> str:
    """``width``^``levels`` values in a few hundred bytes of YAML: each list holds ``width`` - 1 aliases of the last."""
    expr = "&a0 [" + ",".join(["1"] * width) + "]"
    for i in range(1, levels):
        expr = f"&a{i} [{expr}," + ",".join([f"*a{i - 1}"] * (width - 1)) + "]"
    return expr


def test_a_yaml_alias_bomb_in_a_config_or_an_override_is_one_line_in_bounded_memory(tmp_path):
    bomb = _alias_bomb()
    assert len(bomb) < 500
    configs = []
    for section, key in (("model", "arch"), ("data", "skeleton")):
        configs.append(tmp_path / f"{key}.yaml")
        configs[-1].write_text(f"{section}:\n  {key}: {bomb}\n")
    calls = [["train", "--config", path, "--output-dir", tmp_path / f"out{i}"] for i, path in enumerate(configs)]
    calls.append(["train", "--output-dir", tmp_path / "out2", f"model.arch={bomb}"])
    results, growth_kb = run_cli_calls(calls)
    for code, err in results:
        line, = error_lines(err)
        assert code == 2 and "expands to more than 100,000 values" in line, line[:300]
        assert "OPENPOSE_LITE_MAX_CONFIG_VALUES" in line
    assert not any((tmp_path / f"out{i}").exists() for i in range(3))
    assert results[0][1].startswith(f"openpose-lite train: error: {configs[0]}: expands")
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb


def test_an_alias_loop_or_deep_nesting_in_yaml_is_one_line(tmp_path):
    for text, problem in (("model:\n  arch: &a [1, *a]\n", "an alias inside the list or mapping it names"),
                          ("model:\n  arch: " + "[" * 5000 + "]" * 5000 + "\n",
                           f"nests lists or mappings more than {MAX_NESTING_DEPTH} deep")):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=f"^{path}: .*{problem}"):
            load_config(path)


def test_a_stored_config_of_shared_references_is_refused_at_the_bound_and_messages_cut_values_short():
    shared: object = [1] * 10
    for _ in range(5):  # 10^6 values in 60 lists: a pickled checkpoint config holds them as cheaply
        shared = [shared] * 10
    with pytest.raises(ValueError) as refused:
        config_from_dict({"model": {"arch": shared}}, where="ckpt.pt")
    message = str(refused.value)
    assert message.startswith("ckpt.pt: model.arch: expands to more than 100,000 values") and len(message) < 400
    with pytest.raises(ValueError) as wrong:  # under the bound: refused for its type, the value shown cut short
        coerce(list(range(50_000)), str, "model.arch")
    assert str(wrong.value) == "model.arch: expected a string, got [0, 1, 2, 3, 4, 5, 6, 7, ...]"


# ------------------------------------------------------------------------ 5. what a JSON file costs once parsed
def _empty_lists(path: Path, count: int) -> Path:
    with open(path, "wb") as fh:
        fh.write(b"[")
        for _ in range(count // 1_000_000):
            fh.write(b"[]," * 1_000_000)
        fh.write(b"[]," * (count % 1_000_000) + b"[]]")
    return path


def _json_calls(path: Path, hrnet_checkpoint: Path, dataset: Path, out: Path) -> list[list]:
    return [["eval", "--oracle", "bottomup", "--ann", path],
            ["infer", dataset / "images" / "000001.jpg", "--checkpoint", hrnet_checkpoint, "--boxes", path, "-o", out]]


def test_json_past_the_memory_bound_is_refused_while_it_is_read(hrnet_checkpoint, dataset, tmp_path, monkeypatch):
    # 7 MB of [[],[],...]: 2.2 million lists, 250 MB once parsed; the bound lowered to 64 MB for a fast test
    path = _empty_lists(tmp_path / "lists.json", 2_200_000)
    monkeypatch.setenv(MAX_JSON_MEMORY_ENV, "64")
    results, growth_kb = run_cli_calls(_json_calls(path, hrnet_checkpoint, dataset, tmp_path / "out"))
    for code, err in results:
        line, = error_lines(err)
        assert code == 2 and f"{path}: refused, it would take more than 64 MB of memory once parsed" in line
        assert f"{MAX_JSON_MEMORY_ENV}=<MB>" in line
    assert growth_kb < GROWTH_LIMIT_KB and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_issues_210_mb_of_empty_lists_is_refused_at_the_default_bound_in_bounded_memory(
        hrnet_checkpoint, dataset, tmp_path):
    path = _empty_lists(tmp_path / "lists.json", 70_000_000)  # 210 MB: 5.8 GB once parsed
    results, growth_kb = run_cli_calls(_json_calls(path, hrnet_checkpoint, dataset, tmp_path / "out"))
    for code, err in results:
        line, = error_lines(err)
        assert code == 2 and "it would take more than 4096 MB of memory once parsed" in line
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb


@pytest.mark.parametrize("text", [
    "[" + "[]," * 20_000 + "[]]", "[" + "{}," * 20_000 + "{}]", "[" + "0.5," * 20_000 + "0.5]",
    '["' + '","'.join(f"s{i:06d}" for i in range(20_000)) + '"]',
    "{" + ",".join(f'"k{i}": [{i}, {i}.5]' for i in range(10_000)) + "}",
])
def test_the_estimated_cost_is_at_least_what_parsing_takes(text):
    shape = JsonShape()
    shape.feed(text.encode())
    tracemalloc.start()
    value = json.loads(text)
    parsed, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert value and parsed <= shape.cost() <= 4 * parsed, (parsed, shape.cost())


# ------------------------------------------------------------------------ 6. export's example size
def test_export_input_hw_past_the_network_input_bound_is_refused_before_tracing(checkpoint, tmp_path):
    out = tmp_path / "net.pt"
    calls = [["export", "--checkpoint", checkpoint, "--format", "torchscript", "-o", out, "--input-hw", h, w]
             for h, w in (("8000", "8000"), ("100000", "100000"), ("3000", "16"))]
    calls.append([*calls[-1][:-2], "64", "64", "--max-input-pixels", "4000"])  # the bound is the options'
    results, growth_kb = run_cli_calls(calls)
    for call, (code, err) in zip(calls, results):
        line, = error_lines(err)
        assert code == 2 and f"--input-hw {call[8]} {call[9]}: input_hw {call[8]}x{call[9]}" in line
        assert "beyond the network input's limits" in line and "--max-input-pixels" in line
    assert "<= 4000 pixels" in results[-1][1] and not out.exists()
    assert growth_kb < GROWTH_LIMIT_KB, growth_kb


# ------------------------------------------------------------------------ 8. nesting
def _nested(path: Path, depth: int, inner: str = "") -> Path:
    path.write_text("[" * depth + inner + "]" * depth)
    return path


def test_json_nested_a_million_deep_is_one_line_wherever_it_is_read(scenes, tmp_path):
    deep = _nested(tmp_path / "deep.json", 1_000_000)  # 2 MB
    calls = [["eval", "--oracle", "bottomup", "--ann", deep],
             ["synth", tmp_path / "synth", "--skeleton", deep, "--num-images", "1"],
             ["train", *tiny_args(scenes, tmp_path / "run", f"data.skeleton={deep}")]]
    results, growth_kb = run_cli_calls(calls)
    for code, err in results:
        line, = error_lines(err)
        assert code == 2 and f"{deep}: refused, it nests lists or objects more than {MAX_NESTING_DEPTH} deep" in line
    assert growth_kb < GROWTH_LIMIT_KB and not (tmp_path / "run").exists()


def test_the_nesting_bound_counts_brackets_outside_strings_only(tmp_path):
    assert read_json(_nested(tmp_path / "at.json", MAX_NESTING_DEPTH), "box file") is not None
    with pytest.raises(ValueError, match=f"more than {MAX_NESTING_DEPTH} deep"):
        read_json(_nested(tmp_path / "past.json", MAX_NESTING_DEPTH + 1), "box file")
    strings = tmp_path / "strings.json"  # brackets and escaped quotes inside strings nest nothing
    strings.write_text(json.dumps({"a": "[" * 500, "b": '\\"' + "{" * 500, "c": ["]" * 500, [1]]}))
    assert read_json(strings, "box file")["c"][1] == [1]


def test_an_openvino_ir_whose_skeleton_is_nested_a_million_deep_is_one_line(tmp_path):
    openvino = pytest.importorskip("openvino")
    from openpose_lite.inference.openvino_model import IR_FORMAT, RT_KEY, read_ir

    images = openvino.opset13.parameter([-1, 3, -1, -1], openvino.Type.f32, name="images")
    model = openvino.Model([openvino.opset13.relu(images)], [images])
    settings = {"format": str(IR_FORMAT), "config": "null", "names": '["heatmaps"]', "precision": "fp32",
                "arch": "vgg19_paf", "skeleton": "[" * 1_000_000 + "]" * 1_000_000, "stride": "8"}
    for name, value in settings.items():
        model.set_rt_info(value, [RT_KEY, name])
    path = tmp_path / "model.xml"
    openvino.save_model(model, str(path))
    with pytest.raises(ValueError) as refused:
        read_ir(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: its openpose_lite settings (rt_info) are damaged (skeleton: JSON refused")
    assert f"more than {MAX_NESTING_DEPTH} deep" in message and "\n" not in message
