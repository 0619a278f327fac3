"""Training of both branches: config resolution, data, the epoch loop, checkpoints and logs.

``train_vgg19.py`` (bottom-up) and ``openpose-lite train`` (either branch, chosen by
``model.arch``) are thin shells over :func:`main`. A :class:`Branch` supplies what differs:
datasets and loaders, the loss, the COCO AP evaluation and the parameter group frozen first.

* bottom-up (``vgg19_paf``): whole images with CMU augmentation, :class:`BottomUpPafCodec`
  targets, masked per-stage MSE, freeze-then-release of the VGG19 trunk;
* top-down (``hrnet``): person crops with HRNet augmentation, :class:`TopDownHeatmapCodec`
  targets, the keypoint MSE with target weights, AP with ground-truth boxes.

Writes into ``train.output_dir``: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one
record per logged step, epoch and evaluation), ``last.pt`` and ``best.pt`` (atomic; each holds
the config, model, optimizer, scheduler, epoch, best metric and RNG states), ``tensorboard/``
when TensorBoard is installed, and ``data/`` with the generated scenes of a synthetic run
(``train``, ``val`` and the 100-image ``held_out`` set that training never sees).

Exit codes: 0 done, 1 stopped (non-finite loss), 2 bad arguments, config or data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from openpose_lite import engine
from openpose_lite.config import (
    Config,
    build_bottomup_codec,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_STOPPED, EXIT_USAGE = 0, 1, 2

# Generated scenes: image i of a set is drawn from default_rng([seed, i]) (data.synthetic), so
# these offsets on train.seed keep the three sets disjoint.
SYNTH_TRAIN_SEED, SYNTH_VAL_SEED, SYNTH_HELD_OUT_SEED = 1000, 2000, 3000
HELD_OUT_IMAGES = 100


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a pose model: the OpenPose VGG19 + PAF model or the top-down HRNet, by model.arch. "
        "Settings come from the dataclass defaults "
        "(openpose_lite/config.py), then --config YAML, then the shortcut flags, then section.key=value overrides.",
        add_help=add_help,
    )
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides, the value parsed as YAML (train.lr=1e-3, train.step_milestones=[30,60])")
    parser.add_argument("--config", type=Path, help="YAML file with the deltas from the defaults")
    parser.add_argument("--output-dir", help="shortcut for train.output_dir=...")
    parser.add_argument("--epochs", type=int, help="shortcut for train.epochs=...")
    parser.add_argument("--device", help="shortcut for train.device=... (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                        help="continue a run from a training checkpoint (default: <output_dir>/last.pt); "
                        "without --config the checkpoint's own config is used (overrides still apply)")
    parser.add_argument("--backbone-weights", type=Path, metavar="FILE",
                        help="ImageNet classification weights for the trunk: torchvision's vgg19 (vgg19-dcbb9e9d.pth) "
                        "for model.arch vgg19_paf, the official ImageNet HRNet (hrnet_w32-36af842e.pth) for hrnet; "
                        "without it the trunk starts from scratch")
    parser.add_argument("--held-out-images", type=int, default=HELD_OUT_IMAGES,
                        help="synthetic runs: size of the held-out scene set written to <output_dir>/data/held_out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log at INFO level (-vv: DEBUG)")
    return parser


# ------------------------------------------------------------------------------ config
def _shortcut_overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.output_dir is not None:
        out.append(f"train.output_dir={json.dumps(str(args.output_dir))}")
    if args.epochs is not None:
        out.append(f"train.epochs={args.epochs}")
    if args.device is not None:
        out.append(f"train.device={args.device}")
    return out + list(args.overrides)


def _config_with_overrides(base: dict[str, Any], overrides: Sequence[str], where: str) -> Config:
    """A checkpoint's stored config with ``section.key=value`` overrides on top, validated strictly."""
    data = {section: dict(values) for section, values in base.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        data.setdefault(section, {})[key] = value
    return config_from_dict(data, where=where + (f" + overrides {' '.join(overrides)}" if overrides else ""))


def resolve_config(args: argparse.Namespace) -> tuple[Config, Path | None]:
    """(the resolved config, the checkpoint to resume from or None)."""
    overrides = _shortcut_overrides(args)
    resume: Path | None = None
    if args.resume not in (None, "auto") and args.config is None:
        resume = Path(args.resume)
        from openpose_lite.checkpoint import load_checkpoint

        cfg = _config_with_overrides(load_checkpoint(resume)["config"], overrides, f"{resume} config")
    else:
        cfg = load_config(args.config, overrides)
        if args.resume == "auto":
            resume = Path(cfg.train.output_dir) / "last.pt"
        elif args.resume is not None:
            resume = Path(args.resume)
    if resume is not None and not resume.is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
    return cfg, resume


# -------------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class DataPaths:
    train_ann: Path
    train_images: Path
    val_ann: Path | None
    val_images: Path | None
    held_out_ann: Path | None = None


def _synthetic_set(out_dir: Path, num_images: int, seed: int) -> Path:
    """Write generated scenes unless ``out_dir`` already holds this very set (a resumed run)."""
    from openpose_lite.data.synthetic import write_dataset

    ann = out_dir / "annotations.json"
    if ann.is_file():
        try:
            info = json.loads(ann.read_text(encoding="utf-8"))
            if info.get("info", {}).get("seed") == seed and len(info.get("images", [])) == num_images:
                return ann
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a damaged file: write the set again
    return write_dataset(out_dir, num_images, seed)


def prepare_data(cfg: Config, info: engine.DistInfo, held_out_images: int) -> DataPaths:
    """Dataset paths from the config; a synthetic run generates what is missing (rank 0 writes, the others wait)."""
    d = cfg.data
    out = Path(cfg.train.output_dir) / "data"
    held_out = None
    if d.train_ann is None:
        if not d.synthetic:
            raise ValueError("data.train_ann and data.train_images are not set; give COCO-format paths or set data.synthetic=true")
        if info.is_main:
            _synthetic_set(out / "train", d.synthetic_train_images, SYNTH_TRAIN_SEED + cfg.train.seed)
        train_ann, train_images = out / "train" / "annotations.json", out / "train" / "images"
    else:
        train_ann, train_images = Path(d.train_ann), Path(d.train_images or "")
    if d.val_ann is None and d.synthetic:
        if info.is_main:
            _synthetic_set(out / "val", d.synthetic_val_images, SYNTH_VAL_SEED + cfg.train.seed)
            if held_out_images > 0:
                _synthetic_set(out / "held_out", held_out_images, SYNTH_HELD_OUT_SEED + cfg.train.seed)
        val_ann, val_images = out / "val" / "annotations.json", out / "val" / "images"
        held_out = out / "held_out" / "annotations.json" if held_out_images > 0 else None
    elif d.val_ann is not None:
        val_ann, val_images = Path(d.val_ann), Path(d.val_images or "")
    else:
        val_ann = val_images = None
    engine.barrier()
    for path in (train_ann, val_ann):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
    return DataPaths(train_ann, train_images, val_ann, val_images, held_out)


def _bottomup_loaders(cfg: Config, paths: DataPaths, info: engine.DistInfo, device: torch.device):
    """(train dataset, train loader, train sampler, val loader or None) of whole images for the bottom-up model."""
    from openpose_lite.data.coco import BottomUpTrainDataset, CocoKeypoints

    t = cfg.train
    codec = build_bottomup_codec(cfg)
    train_ds = BottomUpTrainDataset(CocoKeypoints(paths.train_ann, paths.train_images), codec, cfg.data,
                                    train=True, seed=t.seed)
    val_ds = None
    if paths.val_ann is not None:
        val_ds = BottomUpTrainDataset(CocoKeypoints(paths.val_ann, paths.val_images), codec, cfg.data, train=False, seed=t.seed)
    return _loaders(cfg, paths, info, device, train_ds, val_ds)


def _loaders(cfg: Config, paths: DataPaths, info: engine.DistInfo, device: torch.device, train_ds, val_ds):
    """DataLoaders of a branch's datasets: a seeded distributed sampler for training, shards for validation."""
    d, t = cfg.data, cfg.train
    if len(train_ds) < t.batch_size * info.world_size:
        raise ValueError(f"{paths.train_ann}: {len(train_ds)} training images with people, fewer than one batch "
                         f"(train.batch_size {t.batch_size} x {info.world_size} processes)")
    # The same sampler alone and under DDP: the order depends only on (seed, epoch), so a
    # resumed run sees the batches the uninterrupted one would have.
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=t.seed)
    common = dict(num_workers=d.num_workers, pin_memory=device.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train_ds, batch_size=t.batch_size, sampler=sampler, drop_last=True, **common)
    val_loader = None
    if val_ds is not None:
        if len(val_ds):
            val_loader = DataLoader(val_ds, batch_size=t.batch_size,
                                    sampler=engine.ShardSampler(len(val_ds), info.rank, info.world_size), **common)
    return train_ds, train_loader, sampler, val_loader


def _bottomup_ap(model: torch.nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                 max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the bottom-up ``model`` on the first ``max_images`` (0: all) images of a COCO file."""
    from openpose_lite.evaluation import evaluate_predictor
    from openpose_lite.predictor import BottomUpPredictor

    model = engine.unwrap_model(model)
    was_training = model.training
    predictor = BottomUpPredictor(model, build_bottomup_codec(cfg), input_size=cfg.codec.input_size, device=device)
    try:
        return evaluate_predictor(predictor, ann, images, max_images, max(1, cfg.train.batch_size), progress).metrics
    finally:
        model.train(was_training)


def _topdown_loaders(cfg: Config, paths: DataPaths, info: engine.DistInfo, device: torch.device):
    """(train dataset, train loader, train sampler, val loader or None) of person crops for the top-down model."""
    from openpose_lite.config import build_topdown_codec
    from openpose_lite.data.coco import CocoKeypoints
    from openpose_lite.data.topdown import TopDownDataset, TopDownInstances

    codec = build_topdown_codec(cfg)
    train_ds = TopDownDataset(TopDownInstances.from_coco(CocoKeypoints(paths.train_ann, paths.train_images)),
                              codec, cfg.topdown, train=True, seed=cfg.train.seed)
    val_ds = None
    if paths.val_ann is not None:
        val_ds = TopDownDataset(TopDownInstances.from_coco(CocoKeypoints(paths.val_ann, paths.val_images)),
                                codec, cfg.topdown, train=False, seed=cfg.train.seed)
    return _loaders(cfg, paths, info, device, train_ds, val_ds)


def _topdown_loss_terms(outputs: Any, targets: Any, weights: Any) -> dict[str, torch.Tensor]:
    from openpose_lite.losses import keypoint_mse_loss

    return {"heatmaps": keypoint_mse_loss(outputs[-1]["heatmaps"], targets["heatmaps"], weights["heatmaps"])}


def _topdown_ap(model: torch.nn.Module, cfg: Config, ann: Path, images: Path, device: torch.device,
                max_images: int = 0, progress: bool = False) -> dict[str, float]:
    """COCO keypoint AP of the top-down ``model`` with the ground-truth person boxes of a COCO file."""
    from openpose_lite.config import build_topdown_codec
    from openpose_lite.evaluation import evaluate_predictor
    from openpose_lite.inference.boxes import gt_box_source
    from openpose_lite.predictor import TopDownPipeline, TopDownPredictor

    model = engine.unwrap_model(model)
    was_training = model.training
    codec = build_topdown_codec(cfg)
    predictor = TopDownPredictor(model, codec, flip=cfg.topdown.flip_test, device=device,
                                 batch_size=max(1, cfg.train.batch_size), padding=cfg.topdown.padding)
    pipeline = TopDownPipeline(predictor, gt_box_source(ann, codec.convention))
    try:
        return evaluate_predictor(pipeline, ann, images, max_images, 1, progress).metrics
    finally:
        model.train(was_training)


@dataclasses.dataclass(frozen=True)
class Branch:
    """What one kind of model needs from the shared training loop."""

    name: str
    build_loaders: Callable[..., tuple]
    loss_terms: engine.LossFn
    evaluate_ap: Callable[..., dict[str, float]]
    frozen_first: Callable[[torch.nn.Module], list]  # parameters frozen for train.freeze_trunk_epochs


BRANCHES: dict[str, Branch] = {
    "vgg19_paf": Branch("bottom-up", _bottomup_loaders, engine.bottomup_loss_terms, _bottomup_ap,
                        lambda model: list(model.trunk_parameters())),
    "hrnet": Branch("top-down", _topdown_loaders, _topdown_loss_terms, _topdown_ap, lambda model: []),
}


# -------------------------------------------------------------------------------- main
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _better(value: float, best: float | None, name: str) -> bool:
    if best is None:
        return True
    return value > best if name == "AP" else value < best


def main(argv: Sequence[str] | None = None, prog: str = "openpose-lite train", arch: str | None = None) -> int:
    """Parse ``argv`` and train; ``arch`` restricts the config's ``model.arch`` (train_vgg19.py: vgg19_paf)."""
    return run(get_args_parser().parse_intermixed_args(argv), prog, arch)


def run(args: argparse.Namespace, prog: str = "openpose-lite train", arch: str | None = None) -> int:
    """Train from parsed :func:`get_args_parser` arguments; returns the exit code."""
    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # "--resume train.epochs=20": argparse gave the override to --resume's optional value.
        args.overrides.append(args.resume)
        args.resume = "auto"
    try:
        cfg, resume = resolve_config(args)
        if arch is not None and cfg.model.arch != arch:
            raise ValueError(f"model.arch: {prog} trains {arch!r}, got {cfg.model.arch!r}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        info, device = engine.setup_distributed(cfg.train.device)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level if info.is_main else logging.ERROR,
                        format=f"%(asctime)s [rank {info.rank}] %(levelname)s %(name)s: %(message)s")
    try:
        return _train(cfg, BRANCHES[cfg.model.arch], resume, args, info, device)
    except engine.NonFiniteLossError as exc:
        out = Path(cfg.train.output_dir) / "last.pt"
        kept = f"the last good checkpoint is {out}" if out.is_file() else "no checkpoint had been written yet"
        if info.is_main:
            print(f"{prog}: training stopped: {exc}; {kept}. Lower train.lr, check the data, "
                  f"or resume from it with --resume.", file=sys.stderr)
        return EXIT_STOPPED
    except (FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error [rank {info.rank}]: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.teardown_distributed()


def _train(cfg: Config, branch: Branch, resume: Path | None, args: argparse.Namespace, info: engine.DistInfo,
           device: torch.device) -> int:
    from openpose_lite.models.weights import build_model_from_config_dict, load_backbone

    t = cfg.train
    out = Path(t.output_dir)
    say = print if info.is_main else (lambda *a, **k: None)
    progress = info.is_main and not args.no_progress and sys.stderr.isatty()
    if device.type == "cpu":
        # Every core for this process's math; under torchrun on one machine they are shared.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, info.local_world_size)))
    amp = t.amp and device.type == "cuda"

    cfg_dict = config_to_dict(cfg)
    metrics = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        metrics = engine.MetricsLogger(out / "metrics.jsonl", tensorboard_dir=out / "tensorboard")
    try:
        paths = prepare_data(cfg, info, args.held_out_images)
        train_ds, train_loader, sampler, val_loader = branch.build_loaders(cfg, paths, info, device)

        # Seeded right before the model is built: the initial weights depend on train.seed
        # alone (the same on every rank, whatever the data preparation drew before).
        _seed_everything(t.seed)
        model = build_model_from_config_dict(cfg_dict["model"]).to(device)
        if args.backbone_weights is not None:
            trunk_init = load_backbone(model, args.backbone_weights)
        else:
            trunk_init = "from scratch (no --backbone-weights)"
            if t.freeze_trunk_epochs > 0 and resume is None and branch.frozen_first(model):
                logger.warning("train.freeze_trunk_epochs=%d with a trunk from scratch: the random trunk stays fixed "
                               "for those epochs", t.freeze_trunk_epochs)
        optimizer = engine.build_optimizer(model.parameters(), t)
        scheduler = engine.build_scheduler(optimizer, t)
        scaler = torch.amp.GradScaler("cuda", enabled=amp) if device.type == "cuda" else None

        start_epoch, global_step, best, best_name = 0, 0, None, ""
        if resume is not None:
            state = engine.load_training_state(resume, model, optimizer, scheduler, scaler)
            start_epoch, global_step = int(state["epoch"]), int(state.get("global_step", 0))
            best, best_name = state.get("best_metric"), str(state.get("best_metric_name") or "")
            trunk_init = f"resumed from {resume} at epoch {start_epoch}"
        if not best_name:
            best_name = "AP" if paths.val_ann is not None else "train_loss"

        num_params = sum(p.numel() for p in model.parameters())
        say(f"trunk: {trunk_init}")
        shape = (f"{cfg.model.num_stages} stages, width_mult {cfg.model.width_mult}" if cfg.model.arch == "vgg19_paf"
                 else f"HRNet-W{cfg.model.hrnet_width}")
        say(f"{branch.name} model: {shape}, {num_params / 1e6:.2f} M parameters; "
            f"device {device}{' (AMP)' if amp else ''}, {info.world_size} process(es); "
            f"{len(train_ds)} training images, output {out}")
        logger.info("trunk %s", trunk_init)
        if metrics is not None:
            metrics.log({"type": "run_start", "time": time.time(), "trunk_init": trunk_init, "device": str(device),
                         "world_size": info.world_size, "start_epoch": start_epoch, "parameters": num_params,
                         "train_images": len(train_ds), "amp": amp, "config": cfg_dict})

        trunk = branch.frozen_first(model)
        ddp_model, frozen_state = None, None
        for epoch_index in range(start_epoch, t.epochs):
            epoch = epoch_index + 1
            frozen = bool(trunk) and epoch_index < t.freeze_trunk_epochs
            if frozen != frozen_state:
                engine.set_trainable(trunk, not frozen)
                # DDP only syncs what required grad when it was built: wrap again after a release.
                ddp_model = engine.wrap_ddp(model, device)
                if frozen_state is not None or frozen:
                    say(f"epoch {epoch}: trunk {'frozen' if frozen else 'released, everything trains'}")
                frozen_state = frozen
            sampler.set_epoch(epoch_index)
            train_ds.set_epoch(epoch_index)
            stats = engine.train_one_epoch(
                ddp_model, train_loader, optimizer, branch.loss_terms, device, scaler, epoch,
                amp=amp, log_every=t.log_every, metrics_logger=metrics, global_step=global_step, progress=progress,
            )
            global_step += int(stats["steps"])
            record: dict[str, Any] = {"type": "epoch", "epoch": epoch, "global_step": global_step, "trunk_frozen": frozen,
                                      **{f"train/{k}": v for k, v in stats.items()}}
            val_loss = None
            if val_loader is not None:
                val = engine.evaluate_loss(model, val_loader, branch.loss_terms, device, amp=amp, progress=progress)
                val_loss = val["loss"]
                record.update({f"val/{k}": v for k, v in val.items()})
            evaluate_now = paths.val_ann is not None and (epoch == t.epochs or (t.eval_every > 0 and epoch % t.eval_every == 0))
            ap = None
            if evaluate_now and info.is_main:
                ap_start = time.perf_counter()
                ap = branch.evaluate_ap(model, cfg, paths.val_ann, paths.val_images, device, t.val_max_images, progress)
                record.update({f"val/{k}": v for k, v in ap.items()})
                record["val/ap_seconds"] = time.perf_counter() - ap_start
            engine.step_scheduler(scheduler, val_loss if val_loss is not None else stats["loss"])
            record["next_lr"] = engine.current_lr(optimizer)

            if info.is_main:
                metric = ap["AP"] if best_name == "AP" and ap is not None else None
                if best_name != "AP":
                    metric = val_loss if best_name == "val_loss" else stats["loss"]
                improved = metric is not None and _better(metric, best, best_name)
                if improved:
                    best = metric
                record["best_metric"], record["best_metric_name"] = best, best_name
                # last.pt is written after every epoch; best.pt only when the watched metric improves.
                engine.save_training_state(out / "last.pt", model, optimizer, scheduler, epoch, cfg_dict,
                                           best_metric=best, best_metric_name=best_name, scaler=scaler,
                                           global_step=global_step)
                if improved:
                    engine.save_training_state(out / "best.pt", model, optimizer, scheduler, epoch, cfg_dict,
                                               best_metric=best, best_metric_name=best_name, scaler=scaler,
                                               global_step=global_step, best_epoch=epoch)
                assert metrics is not None
                metrics.log(record, step=global_step)
                line = (f"epoch {epoch}/{t.epochs}: loss {stats['loss']:.4g}"
                        + (f", val loss {val_loss:.4g}" if val_loss is not None else "")
                        + (f", AP {ap['AP']:.3f} (AP50 {ap['AP50']:.3f})" if ap is not None else "")
                        + f", lr {stats['lr']:.3g}, {stats['samples_per_s']:.1f} img/s, {stats['seconds']:.0f} s"
                        + (" *" if improved else ""))
                say(line)
            engine.barrier()
        if info.is_main:
            say(f"done: {out / 'last.pt'}" + (f", best {best_name} {best:.4g} in {out / 'best.pt'}" if best is not None else ""))
            if paths.held_out_ann is not None:
                say(f"held-out scenes for evaluation: {paths.held_out_ann.parent}")
    finally:
        if metrics is not None:
            metrics.close()
    return EXIT_OK

