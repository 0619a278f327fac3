"""openpose-lite bench on tiny models: outputs, tables, the reproducing command, the accuracy section."""

from __future__ import annotations

import argparse
import builtins
import csv
import dataclasses
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_optional

from openpose_lite import cli
from openpose_lite.bench import (
    AccuracyRow,
    BenchConfig,
    BenchResult,
    SpeedRow,
    boxes_from_poses,
    run_bench,
    write_outputs,
)
from openpose_lite.config import (
    CodecConfig,
    Config,
    ModelConfig,
    TopDownConfig,
    config_to_dict,
)
from openpose_lite.data.synthetic import SceneConfig, write_dataset
from openpose_lite.models.hrnet import build_hrnet
from openpose_lite.network_settings import HRNetSettings, PafSettings
from openpose_lite.models.vgg19_paf import build_vgg19_paf
from openpose_lite.skeleton import COCO_17
from openpose_lite.structures import Poses
from openpose_lite.training.checkpoint import save_checkpoint

# Tiny models: seconds on a CPU. One torch thread: on a busy 2-core machine two threads of
# small convolutions spend most of their time waiting for each other.
TINY = ["--people", "1", "2", "--size", "96", "128", "--repeats", "1", "--warmup", "1", "--decode-repeats", "2",
        "--device", "cpu", "--threads", "1", "--bu-width-mult", "0.125", "--bu-stages", "2", "--bu-input-size", "64",
        "--hrnet-width", "8", "--td-input-hw", "64", "64"]
SPEED_COLUMNS = [f.name for f in dataclasses.fields(SpeedRow)]


def _printed_command(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("openpose-lite bench ")]
    assert len(lines) == 1, out
    return lines[0]


def test_tiny_bench_writes_csv_table_plot_and_prints_the_reproducing_command(tmp_path, capsys):
    out_dir = tmp_path / "bench"
    assert cli.main(["bench", *TINY, "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out

    with open(out_dir / "speed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == SPEED_COLUMNS
    assert [int(r["people"]) for r in rows] == [1, 2]
    for r in rows:
        assert 1 <= int(r["annotated"]) <= int(r["people"])
        assert int(r["td_boxes"]) == int(r["annotated"])  # ground-truth boxes: one crop per annotated person
        assert r["td_box_source"] == "gt" and float(r["td_box_ms"]) == 0.0
        for column in ("bu_network_ms", "bu_decode_gt_ms", "td_crop_ms", "td_network_batched_ms",
                       "td_decode_ms", "td_network_single_ms"):
            assert float(r[column]) > 0, column
        # A total holds its parts.
        assert float(r["td_total_batched_ms"]) >= float(r["td_network_batched_ms"])
        assert float(r["bu_total_ms"]) >= float(r["bu_network_ms"])
    assert not (out_dir / "accuracy.csv").exists()

    assert "| people | annotated | BU network |" in printed and "TD total 1-by-1" in printed
    assert "random weights" in printed
    command = _printed_command(printed)
    assert command.startswith("openpose-lite bench --people 1 2 --size 96 128 --repeats 1")
    assert "--device cpu --precision fp32 --backend torch --threads 1" in command and "--hrnet-width 8" in command
    table = (out_dir / "table.md").read_text()
    assert command in table and "| people |" in table
    assert (out_dir / "speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # matplotlib: a core dependency


def test_printed_command_parses_back_to_the_resolved_config(tmp_path):
    config = BenchConfig(people=(3,), image_hw=(64, 96), repeats=1, warmup=0, decode_repeats=1, device="cpu", threads=1,
                         seed=7, bu_width_mult=0.125, bu_stages=1, bu_input_size=32, hrnet_width=4,
                         td_input_hw=(64, 32), out_dir=str(tmp_path / "b"))
    result = run_bench(config)
    resolved = result.config
    assert (resolved.device, resolved.threads, resolved.bu_input_size) == ("cpu", 1, 32)
    argv = shlex.split(resolved.command_line())
    assert argv[:2] == ["openpose-lite", "bench"]
    again = BenchConfig.from_args(cli.build_parser().parse_args(argv[1:]))
    assert again == resolved
    # Defaults resolve to the paper models, spelled out in the command.
    default = BenchConfig()
    assert default.bu_width_mult is None and default.hrnet_width is None


def test_rerun_gives_the_same_scenes_and_counts(tmp_path):
    config = BenchConfig(people=(2,), image_hw=(64, 96), repeats=1, warmup=0, decode_repeats=1, device="cpu", threads=1,
                         bu_width_mult=0.125, bu_stages=1, bu_input_size=32, hrnet_width=4, td_input_hw=(64, 32),
                         out_dir=str(tmp_path))
    first, second = run_bench(config).speed[0], run_bench(config).speed[0]
    assert (first.annotated, first.bu_found_gt, first.td_boxes) == (second.annotated, second.bu_found_gt, second.td_boxes)


def _tiny_checkpoints(tmp_path):
    torch.manual_seed(0)
    bu = build_vgg19_paf(num_stages=2, width_mult=0.125)
    bu_path = save_checkpoint(tmp_path / "bu.pt", model_state=bu.state_dict(), config=config_to_dict(
        Config(model=ModelConfig(settings=PafSettings(num_stages=2, width_mult=0.125)), codec=CodecConfig(input_size=96))))
    td = build_hrnet(width=8)
    td_path = save_checkpoint(tmp_path / "td.pt", model_state=td.state_dict(), config=config_to_dict(
        Config(model=ModelConfig(arch="hrnet", settings=HRNetSettings(width=8)), topdown=TopDownConfig(input_hw=(64, 64), heatmap_hw=(16, 16)))))
    return bu_path, td_path


def test_accuracy_section_has_both_models_and_both_oracles(tmp_path, capsys):
    bu_path, td_path = _tiny_checkpoints(tmp_path)
    ann = write_dataset(tmp_path / "set", 3, seed=0, image_format="png",
                        cfg=SceneConfig(image_hw=(96, 128), people_range=(1, 2), person_height_range=(0.5, 0.9)))
    out_dir = tmp_path / "out"
    argv = ["bench", "--people", "1", "--size", "96", "128", "--repeats", "1", "--warmup", "0", "--decode-repeats", "1",
            "--device", "cpu", "--threads", "1", "--bu-checkpoint", str(bu_path), "--td-checkpoint", str(td_path),
            "--ann", str(ann), "--images", str(tmp_path / "set" / "images"), "--out", str(out_dir)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out

    with open(out_dir / "accuracy.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["branch"], r["kind"]) for r in rows] == [
        ("bottomup", "model"), ("topdown", "model"), ("bottomup", "oracle"), ("topdown", "oracle")]
    for r in rows:
        assert -1.0 <= float(r["AP"]) <= 1.0 and "AR" in r
    oracles = [float(r["AP"]) for r in rows if r["kind"] == "oracle"]
    assert min(oracles) > 0.8  # the codecs lose little on these large, clean people
    assert "bottom-up model (bu.pt, input 96)" in printed and "top-down codec oracle (64x64" in printed
    # The checkpoints size the models, so the command carries them and no random-model options.
    command = _printed_command(printed)
    assert f"--bu-checkpoint {bu_path}" in command and "--bu-width-mult" not in command and "--hrnet-width" not in command


def test_boxes_from_poses_pads_the_keypoint_extent_and_skips_lone_keypoints():
    k = COCO_17.num_keypoints
    kps = np.zeros((2, k, 3), np.float32)
    kps[0, 0] = (10, 20, 0.9)
    kps[0, 5] = (30, 120, 0.8)
    kps[1, 3] = (50, 50, 0.9)  # one keypoint: no extent, no box
    boxes, scores = boxes_from_poses(Poses(kps, np.array([0.7, 0.6], np.float32), COCO_17), padding=0.1)
    np.testing.assert_allclose(boxes, [[8.0, 10.0, 24.0, 120.0]])
    np.testing.assert_allclose(scores, [0.7], rtol=1e-6)


def _fake_result(tmp_path) -> BenchResult:
    rows = [SpeedRow(people=n, annotated=n, bu_network_ms=100.0, bu_decode_ms=0.1, bu_total_ms=101.0,
                     bu_decode_gt_ms=0.5 * n, bu_found_gt=n, td_box_source="gt", td_boxes=n, td_box_ms=0.0,
                     td_crop_ms=0.2 * n, td_network_batched_ms=10.0 * n, td_decode_ms=0.1 * n,
                     td_total_batched_ms=10.3 * n, td_network_single_ms=11.0 * n, td_total_single_ms=11.3 * n)
            for n in (1, 2, 4)]
    accuracy = [AccuracyRow("x oracle", "bottomup", "oracle", {m: 0.5 for m in
                                                               ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")})]
    info = {"bottomup": "bu", "topdown": "td", "device": "cpu", "threads": 1, "cpu_count": 2, "map_hw": (8, 11),
            "random_weights": True, "load_average": (0.0, 0.0), "speed_seconds": 1.0}
    return BenchResult(BenchConfig(people=(1, 2, 4), ann="a.json", out_dir=str(tmp_path)), rows, accuracy, info)


def test_without_matplotlib_the_png_is_skipped_and_the_rest_written(tmp_path, monkeypatch, caplog):
    _block_matplotlib(monkeypatch)
    written = write_outputs(_fake_result(tmp_path))
    assert "plot" not in written and not (tmp_path / "speed.png").exists()
    assert {"speed_csv", "accuracy_csv", "table"} <= set(written)
    assert any("matplotlib is not installed" in r.getMessage() for r in caplog.records)
    assert "| x oracle | 0.500 |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("kwargs, field", [
    ({"people": (0,)}, "people"),
    ({"repeats": 0}, "repeats"),
    ({"box_source": "detector"}, "box_source"),
    ({"td_input_hw": (100, 100)}, "td_input_hw"),
    ({"bu_input_size": 30}, "bu_input_size"),
    ({"bu_checkpoint": "bu.pt", "bu_width_mult": 0.5}, "bu_width_mult"),
    ({"images": "imgs"}, "images"),
])
def test_bad_options_are_value_errors_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BenchConfig(**kwargs)


def test_cli_reports_a_missing_annotation_file(tmp_path, capsys):
    code = cli.main(["bench", *TINY, "--ann", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    assert code == cli.EXIT_USAGE
    assert "ann: file not found" in capsys.readouterr().err


def test_bottomup_box_source_costs_the_bottomup_call_and_a_random_model_gives_no_boxes(tmp_path, caplog):
    config = BenchConfig(people=(2,), image_hw=(64, 96), repeats=1, warmup=0, decode_repeats=1, device="cpu", threads=1,
                         box_source="bottomup", bu_width_mult=0.125, bu_stages=1, bu_input_size=32, hrnet_width=4,
                         td_input_hw=(64, 32), out_dir=str(tmp_path))
    row = run_bench(config).speed[0]
    assert row.td_box_source == "bottomup" and row.td_boxes == 0
    assert row.td_box_ms == pytest.approx(row.bu_total_ms) and row.td_total_batched_ms >= row.td_box_ms
    assert any("finds nobody" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------- one option list, validation
def test_bench_options_are_the_config_fields_and_parse_back_to_the_config():
    parser = argparse.ArgumentParser()
    BenchConfig.add_arguments(parser)
    assert {a.dest for a in parser._actions} - {"help"} == {f.name for f in dataclasses.fields(BenchConfig)}
    cli_parser = cli.build_parser()
    assert BenchConfig.from_args(cli_parser.parse_args(["bench"])) == BenchConfig()
    random_models = BenchConfig(people=(3, 5), image_hw=(64, 96), repeats=2, warmup=0, decode_repeats=4, device="cpu",
                                threads=2, seed=7, box_source="bottomup", bu_width_mult=0.3, bu_stages=2,
                                bu_input_size=96, hrnet_width=16, td_input_hw=(128, 96), ann="a b.json", out_dir="o")
    checkpoints = BenchConfig(bu_checkpoint="bu.pt", td_checkpoint="td.pt", ann="a.json", images="imgs", flip=True)
    for config in (random_models, checkpoints):
        argv = shlex.split(config.command_line())
        assert argv[:2] == ["openpose-lite", "bench"]
        assert BenchConfig.from_args(cli_parser.parse_args(argv[1:])) == config


def test_a_bad_option_value_is_one_line_naming_the_flag_and_what_was_expected(tmp_path, capsys):
    assert cli.main(["bench", "--repeats", "0", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--repeats" in err and "expected an integer >= 1, got 0" in err


def test_random_models_take_their_sizes_from_the_architecture_table(monkeypatch):
    from openpose_lite import architectures

    # Tiny stand-ins for the published sizes (the settings' defaults): the bench must read them from the
    # table, not restate them.
    tiny = {PafSettings: ([("num_stages", int, 1), ("stage_channels", int, 16), ("width_mult", float, 0.125)], {}),
            HRNetSettings: ([("width", int, 4), ("blocks", int, 1)],
                            {"topdown": {"input_hw": [64, 32], "heatmap_hw": [16, 8]}})}
    rows = tuple(a if a.settings not in tiny else dataclasses.replace(
        a, settings=dataclasses.make_dataclass("Tiny", tiny[a.settings][0], bases=(a.settings,), frozen=True),
        published=tiny[a.settings][1]) for a in architectures.ARCHITECTURES)
    monkeypatch.setattr(architectures, "_BY_NAME", {a.name: a for a in rows})
    from openpose_lite.bench import models as bench_models

    models, resolved = bench_models.build_models(BenchConfig(device="cpu"), torch.device("cpu"))
    assert (resolved.bu_arch, resolved.td_arch) == ("vgg19_paf", "hrnet")
    assert (resolved.bu_stages, resolved.bu_width_mult, resolved.td_input_hw) == (1, 0.125, (64, 32))
    assert models.bottomup.model.num_stages == 1 and models.topdown.model.width == 4
    assert models.topdown.codec.input_hw == (64, 32) and models.topdown.codec.heatmap_hw == (16, 8)
    assert models.bottomup.input_size == CodecConfig().input_size


def test_a_missing_image_folder_is_refused_before_any_timing(tmp_path, monkeypatch):
    from openpose_lite.bench import speed

    monkeypatch.setattr(speed, "measure_speed", lambda *a: pytest.fail("timed before checking the inputs"))
    for name in ("bu.pt", "a.json"):
        (tmp_path / name).write_text("{}")
    config = BenchConfig(device="cpu", bu_checkpoint=str(tmp_path / "bu.pt"), ann=str(tmp_path / "a.json"),
                         images=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="images: folder not found"):
        run_bench(config)


# ------------------------------------------------------------------------- warm-up, notices
def test_numba_kernels_all_run_before_the_first_timed_call_even_with_warmup_0(tmp_path, monkeypatch):
    from openpose_lite.codecs import _kernels
    from openpose_lite.inference import BottomUpPredictor, TopDownPredictor

    events: list[str] = []
    kernels = [name for name, value in vars(_kernels).items() if name.endswith("_kernel") and hasattr(value, "py_func")]
    assert len(kernels) >= 5
    for name in kernels:
        def spy(*args, _kernel=getattr(_kernels, name), _name=name):
            events.append(_name)
            return _kernel(*args)
        monkeypatch.setattr(_kernels, name, spy)
    for cls, method in ((BottomUpPredictor, "predict_batch"), (TopDownPredictor, "predict")):
        def timed(self, *args, _real=getattr(cls, method), **kwargs):
            events.append("predictor call")
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(cls, method, timed)

    config = BenchConfig(people=(2,), image_hw=(96, 128), repeats=1, warmup=0, decode_repeats=1, device="cpu", threads=1,
                         bu_width_mult=0.125, bu_stages=1, bu_input_size=64, hrnet_width=4, td_input_hw=(64, 32),
                         out_dir=str(tmp_path))
    run_bench(config)
    first_call = events.index("predictor call")
    used = set(events) - {"predictor call"}
    assert {"local_maxima_kernel", "limb_score_kernel", "greedy_match_kernel"} <= used
    # No kernel is first called (compiled, or loaded from numba's cache) inside a timed call.
    assert used <= set(events[:first_call])


def _block_matplotlib(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)


def test_bench_without_matplotlib_gives_its_notice_once(tmp_path, monkeypatch, capsys, caplog):
    _block_matplotlib(monkeypatch)
    assert cli.main(["bench", "--people", "1", *TINY[3:], "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).count("matplotlib is not installed")
    logged = sum("matplotlib is not installed" in r.getMessage() for r in caplog.records)
    assert printed + logged == 1
    assert not (tmp_path / "speed.png").exists() and (tmp_path / "table.md").is_file()


# ----------------------------------------------------------------------------------- figures
_PLAIN_TICK = re.compile(r"^[0-9.]*$")


def _tick_labels(fig) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
            for t in axis.get_ticklabels() + axis.get_ticklabels(minor=True)]


def test_speed_figure_series_differ_in_colour_and_line_style_and_ticks_are_plain_numbers(tmp_path):
    import matplotlib.pyplot as plt

    from openpose_lite.bench.plot import speed_figure

    fig = speed_figure(_fake_result(tmp_path))
    try:
        lines = [line for ax in fig.axes for line in ax.get_lines()]
        labels = [line.get_label() for line in lines]
        assert "TD total, batched" in labels and "TD network, batched" in labels
        assert len({line.get_color() for line in lines}) == len(lines)  # no colour twice in the figure
        for ax in fig.axes:
            styles = [line.get_linestyle() for line in ax.get_lines()]
            assert len(set(styles)) == len(styles)  # no line style twice in a panel
        # the two batched top-down series (1% apart) never share a panel
        assert not any({"TD total, batched", "TD network, batched"} <= {l.get_label() for l in ax.get_lines()}
                       for ax in fig.axes)
        ticks = [t for t in _tick_labels(fig) if t]
        assert ticks and all(_PLAIN_TICK.match(t) for t in ticks), ticks
    finally:
        plt.close(fig)


def _benchmark_script(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _plot_training():
    return _benchmark_script("plot_training")


def _metrics_file(tmp_path, ap_epochs) -> Path:
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    records = []
    for epoch in range(1, 7):
        r = {"type": "epoch", "epoch": epoch, "train/loss": 400.0 / epoch, "val/loss": 450.0 / epoch, "train/lr": 1e-3,
             "train/seconds": 30.0, "train/samples_per_s": 17.0}
        if epoch in ap_epochs:
            r.update({"val/AP": 0.1 * epoch, "val/AP50": 0.15 * epoch})
        records.append(json.dumps(r))
    path.write_text("\n".join(records) + "\n")
    return path


def test_plot_training_prints_the_table_and_draws_the_runs_curves(tmp_path, capsys):
    """The script draws the figure every run writes as curves.png (training/curves.py), for any log."""
    module = _plot_training()
    metrics = _metrics_file(tmp_path, ap_epochs={3, 6})
    assert module.main([str(metrics), "-o", str(tmp_path / "figure.png")]) == module.EXIT_OK
    out = capsys.readouterr().out
    assert "| epoch | train loss |" in out and "| 6 | 66.7 | 75.0 | 0.600 |" in out
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_infer_runs_on_a_tiny_model_and_prints_one_row_per_configuration(capsys):
    module = _benchmark_script("bench_infer")
    threads = torch.get_num_threads()
    try:
        code = module.main(["--archs", "vgg19_paf", "mobilenet_paf", "--width-mult", "0.125", "--stages", "1",
                            "--size", "64", "96", "--input-size", "32", "--batch-sizes", "1", "2",
                            "--multi-scales", "1", "0.5", "--flip", "--repeats", "1", "--threads", "1",
                            "--precisions", "fp32", "fp16", "--folder", "3", "--folder-rounds", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    out = capsys.readouterr().out
    header = "| model | precision | scales | batch | preprocess | network | postprocess | decode | total | images/s |"
    assert header in out
    rows = [line.split(" | ")[:4] for line in out.splitlines() if line.startswith(("| vgg19", "| mobilenet"))]
    assert rows == [[f"| {arch}", "fp32", scales, batch] for arch in ("vgg19_paf", "mobilenet_paf")
                    for scales in ("1", "1 0.5 + flip") for batch in ("1", "2")]
    # A precision the CPU cannot run is listed as skipped, with the reason, not timed emulated.
    assert "precision fp16: skipped, precision fp16: float16 needs a CUDA device" in out
    assert re.search(r"mobilenet_paf: MobileNetPafNet, 1 stages, [0-9.]+ M parameters, [0-9.]+ GFLOP at 368x496", out)
    assert re.search(r"fp32, scale 1, batch 1: total per image vgg19_paf \d+ ms \(1\.0x vgg19_paf's speed\), "
                     r"mobilenet_paf", out)
    assert "Decode of ground-truth maps" in out
    for run in ("step by step", "pipelined"):
        assert re.search(rf"\| {run} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", out), out


def test_flop_count_of_the_lightweight_network_matches_the_paper():
    # Osokin 2018 (Lightweight OpenPose), abstract and Table 5: the 2-stage network has 4.1 M
    # parameters and "9 GFLOPs" (3.7 trunk + 0.3 + 0.3 + 1.3 initial + 3.4 refinement stage),
    # counted as multiply-adds at the 368x368 input; torch's counter counts 2 FLOP per multiply-add.
    module = _benchmark_script("bench_infer")
    from openpose_lite.factory import ModelConfig, build_model

    light = build_model(ModelConfig(arch="mobilenet_paf")).eval()
    assert sum(p.numel() for p in light.parameters()) / 1e6 == pytest.approx(4.1, abs=0.05)
    assert module.gflop(light, (368, 368)) / 2 == pytest.approx(9.0, abs=0.3)


def test_bench_tracking_prints_both_rows_and_the_time_per_frame(checkpoint, capsys):
    import_optional("motmetrics")
    module = _benchmark_script("bench_tracking")
    assert module.main(["--videos", "1", "--frames", "6", "--people", "2", "--size", "96", "128",
                        "--timing-people", "3", "--timing-frames", "25", "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "| (a) true poses + 2 px noise" in out
    model = rf"\| \(b\) {re.escape(str(checkpoint))}'s own people \(input 128, one scale\) \| "
    assert re.search(model + r"Tracker \(defaults: min_score 0.55\) \|", out)  # the defaults changed on purpose
    assert re.search(model + r"Tracker, min_score 0 \|", out)  # every person: what the default leaves out
    assert re.search(r"\| off \| [0-9.]+ \|", out) and re.search(r"\| One Euro \| [0-9.]+ \|", out)


def test_bench_train_times_the_data_pipeline_and_a_training_step_of_the_quickstart_config(capsys):
    module = _benchmark_script("bench_train")
    assert module.main(["--steps", "1", "--warmup", "1", "--passes", "1", "--synthetic-images", "8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| generated scenes \(368x368\) \| 184 \| 8 \| [0-9.]+ \| [0-9.]+ \|", out)
    assert re.search(r"\| [0-9.]+ ms \| [0-9.]+ ms \| [0-9.]+ \|", out)  # step, forward, images/s


@pytest.mark.slow
def test_bench_live_serves_a_stream_to_infer_on_either_backend_and_reports_latency(checkpoint, capsys):
    module = _benchmark_script("bench_live")
    for backend in ("torch", "openvino"):
        if backend == "openvino":
            import_optional("openvino")
        # A live stream does not wait: it must outlast infer's start-up (imports, an OpenVINO conversion).
        assert module.main(["--weights", str(checkpoint), "--seconds", "8", "--fps", "4", "--size", "64", "96",
                            "--people", "1", "--backend", backend]) == 0
        out = capsys.readouterr().out
        assert f"{backend} fp32, frames 64x96, with --track" in out
        assert re.search(r"exit code 0; exited [0-9.]+ s after the stream's start", out)
        processed = re.search(r"stream: 32 frames at 4 fps; read \d+, processed (\d+), dropped \d+", out)
        assert processed and int(processed.group(1)) >= 1, out
        assert "latency capture -> people on disk: median" in out and "CPU: " in out
