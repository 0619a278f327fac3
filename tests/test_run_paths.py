"""One way for each thing the run paths share: ``infer --ray`` reads the weights once on the driver;
``--append`` skips the inputs a folder's index holds, on a local run as on Ray; ``export`` takes the
network-input bound options ``infer`` declares; a live source's dead server is asked once per try;
JSON in memory and JSON files are refused alike."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import import_optional

from openpose_lite.cli import build_parser, main
from openpose_lite.data.mjpeg_stream import MjpegServer
from openpose_lite.inference import BottomUpPredictor
from openpose_lite.io import parse_json, read_json
from openpose_lite.live import LatestFrameReader, LiveSource
from openpose_lite.runs import RunOptions, run


def test_infer_on_ray_reads_the_weights_once_on_the_driver(checkpoint, dataset, tmp_path, monkeypatch, capsys):
    import_optional("ray")
    import_optional("ray.data")
    import openpose_lite.inference as inference
    import openpose_lite.inference.base as base
    from openpose_lite.runs import ray_run

    reads = []
    real = base.load_for_inference

    def counted(path, *args, **kwargs):
        reads.append(Path(path))
        return real(path, *args, **kwargs)

    def no_cluster(ray, address):
        raise ValueError("--ray: no cluster in this test")

    monkeypatch.setattr(base, "load_for_inference", counted)
    monkeypatch.setattr(inference, "load_for_inference", counted)
    monkeypatch.setattr(ray_run, "_connect", no_cluster)  # the driver's checks are done by then
    assert main(["infer", str(dataset / "images" / "000001.jpg"), "--checkpoint", str(checkpoint),
                 "-o", str(tmp_path / "out"), "--ray"]) == 2
    assert "no cluster in this test" in capsys.readouterr().err
    assert reads == [checkpoint]


def test_infer_on_ray_refuses_a_folder_holding_another_run_before_reading_the_weights(checkpoint, dataset, tmp_path,
                                                                                       capsys):
    import_optional("ray")
    image, out = dataset / "images" / "000001.jpg", tmp_path / "out"
    assert main(["infer", str(image), "--checkpoint", str(checkpoint), "-o", str(out)]) == 0
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a weights file")
    capsys.readouterr()
    assert main(["infer", str(image), "--checkpoint", str(broken), "-o", str(out), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "add to it with --append" in err and "broken.pt" not in err  # the folder, not the weights


def test_a_local_append_skips_the_inputs_the_folders_index_holds(checkpoint, dataset, tmp_path):
    images = sorted((dataset / "images").glob("*.jpg"))
    out = tmp_path / "out"
    predictor = BottomUpPredictor.from_weights(checkpoint)
    assert run(predictor, images[:2], RunOptions(output=out, weights=checkpoint)).images == 2
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*_keypoints.json")}
    again = run(predictor, images, RunOptions(output=out, weights=checkpoint, append=True))
    assert again.images == 1  # the third image only
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_keypoints.json") if p.name in written} == written
    assert sorted(p.name for p in out.glob("*_keypoints.json")) == [f"{p.stem}_keypoints.json" for p in images]


def _option(command: str, flag: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return next(a for a in sub.choices[command]._actions if flag in a.option_strings)


@pytest.mark.parametrize("flag", ["--max-input-side", "--max-input-pixels"])
def test_export_takes_the_network_input_bound_options_infer_declares(flag, capsys):
    assert _option("export", flag).help == _option("infer", flag).help
    with pytest.raises(SystemExit) as exited:
        main(["export", "--weights", "w.pt", "--format", "onnx", flag, "4"])
    assert exited.value.code == 2
    assert f"argument {flag}: expected an integer >= " in capsys.readouterr().err


def test_a_dead_servers_every_reconnection_asks_it_once(monkeypatch):
    asked = []
    real = LiveSource.server_answers

    def counted(self, *args, **kwargs):
        answer = real(self, *args, **kwargs)
        asked.append(answer)
        return answer

    monkeypatch.setattr(LiveSource, "server_answers", counted)
    with MjpegServer(frames=250, fps=25, image_hw=(96, 128)) as server:
        reader = LatestFrameReader(LiveSource(url=server.url), reconnect=2, backoff=0.05)
        reader.start()
        threading.Timer(0.5, server.kill).start()
        started = time.monotonic()
        while not reader.finished and time.monotonic() - started < 20:
            reader.take(timeout=0.1)
        reader.stop()
    assert reader.outcome == "lost" and "its server no longer answers; 2 reconnections failed" in reader.problem
    assert asked == [False] * 3  # when the stream broke, then once per failed reconnection


def test_json_in_memory_and_a_json_file_are_refused_for_the_same_reason(tmp_path, monkeypatch):
    deep = "[" * 100 + "]" * 100
    path = tmp_path / "deep.json"
    path.write_text(deep)
    with pytest.raises(ValueError) as in_memory:
        parse_json(deep, "skeleton")
    with pytest.raises(ValueError) as in_file:
        read_json(path, "skeleton")
    assert str(in_memory.value) == "skeleton: JSON refused, " + str(in_file.value).split(": refused, ")[1]
    monkeypatch.setenv("OPENPOSE_LITE_MAX_JSON_MB", "1")
    wide = "[" + ",".join(["[]"] * 400_000) + "]"
    path.write_text(wide)
    for refuse in (lambda: parse_json(wide, "skeleton"), lambda: read_json(path, "skeleton")):
        with pytest.raises(ValueError, match="would take more than 1 MB of memory once parsed"):
            refuse()


@pytest.mark.parametrize("argv", [["infer", "a.jpg", "--scales", "inf"], ["infer", "--camera", "0", "--duration", "inf"],
                                  ["serve", "--checkpoint", "w.pt", "--max-body-mb", "inf"]])
def test_a_positive_number_option_refuses_infinity_by_its_flag(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(argv)
    assert refused.value.code == 2
    assert f"{argv[-2]}: expected a positive number, got 'inf'" in capsys.readouterr().err
