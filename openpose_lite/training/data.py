"""What a run trains on: dataset paths, generated scenes, and the loaders of both branches.

* :func:`prepare_data`: the COCO-format files a config names, or, for ``data.synthetic``,
  generated scenes written into ``<output_dir>/data/`` (``train``, ``val`` and the ``held_out``
  set training never sees); rank 0 writes, the other ranks wait.
* :func:`bottomup_datasets` (whole images, CMU augmentation) and :func:`topdown_datasets`
  (person crops, HRNet augmentation): a branch's (train, val) datasets.
* :func:`make_loaders`: the DataLoaders, with a seeded distributed sampler for training (the
  order depends only on the seed and the epoch, so a resumed run sees the batches the
  uninterrupted one would have) and a padding-free shard sampler for validation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from openpose_lite.coco_skeleton import skeleton_of_file
from openpose_lite.codecs.base import Codec
from openpose_lite.config import Config
from openpose_lite.data.coco import CocoKeypoints
from openpose_lite.data.people import TopDownInstances
from openpose_lite.data.samples import BottomUpTrainDataset, TopDownDataset
from openpose_lite.data.skeleton_figures import PoseBank
from openpose_lite.data.synthetic import write_dataset
from openpose_lite.io import read_json
from openpose_lite.skeleton import COCO_17, Skeleton
from openpose_lite.training.distributed import DistInfo, ShardSampler, barrier

__all__ = ["DataPaths", "Loaders", "bottomup_datasets", "checked_coco", "generates_scenes", "make_loaders", "prepare_data", "topdown_datasets",
           "HELD_OUT_IMAGES", "SYNTH_HELD_OUT_SEED", "SYNTH_TRAIN_SEED", "SYNTH_VAL_SEED"]

logger = logging.getLogger(__name__)

# Generated scenes: image i of a set is drawn from default_rng([seed, i]) (data.synthetic), so
# these offsets on train.seed keep the three sets disjoint.
SYNTH_TRAIN_SEED, SYNTH_VAL_SEED, SYNTH_HELD_OUT_SEED = 1000, 2000, 3000
HELD_OUT_IMAGES = 100


@dataclass(frozen=True)
class DataPaths:
    """The annotation files and image folders of a run (validation and held-out: None when absent)."""

    train_ann: Path
    train_images: Path
    val_ann: Path | None
    val_images: Path | None
    held_out_ann: Path | None = None

    def generated(self, output_dir: Path) -> list[Path]:
        """The generated sets among these paths (folders inside ``output_dir``)."""
        return sorted({p.parent for p in (self.train_ann, self.val_ann, self.held_out_ann)
                       if p is not None and output_dir in p.parents})


def run_skeleton(cfg: Config) -> Skeleton:
    """The skeleton a run trains, in its annotation layout: ``data.skeleton``'s category, else the training
    file's own (:func:`~openpose_lite.coco_skeleton.skeleton_of_file`: COCO-17 for a person file), else
    the people of generated scenes."""
    source = cfg.data.skeleton or cfg.data.train_ann
    return skeleton_of_file(source) if source is not None else COCO_17


def _synthetic_set(out_dir: Path, num_images: int, seed: int, skeleton_file: str | None = None) -> Path:
    """Write generated scenes unless ``out_dir`` already holds this very set (a resumed run)."""
    ann = out_dir / "annotations.json"
    if ann.is_file():
        try:
            info = read_json(ann, "annotation file")
            if info.get("info", {}).get("seed") == seed and len(info.get("images", [])) == num_images:
                return ann
        except (ValueError, AttributeError):
            pass  # a damaged file: write the set again
    logger.info("generating %d scenes (seed %d) into %s", num_images, seed, out_dir)
    bank = PoseBank.from_file(skeleton_file) if skeleton_file is not None else None  # figures of another skeleton
    return write_dataset(out_dir, num_images, seed, bank=bank)


def generates_scenes(cfg: Config) -> bool:
    """Whether :func:`prepare_data` writes generated scenes into the run folder (a synthetic run
    missing a set), so must come after the run owns the folder."""
    return cfg.data.synthetic and (cfg.data.train_ann is None or cfg.data.val_ann is None)


def prepare_data(cfg: Config, info: DistInfo, held_out_images: int) -> DataPaths:
    """Dataset paths from the config; a synthetic run generates what is missing (rank 0 writes, the others wait).

    Raises ValueError when neither paths nor ``data.synthetic`` are given and FileNotFoundError
    for a missing annotation file.
    """
    d = cfg.data
    out = Path(cfg.train.output_dir) / "data"
    held_out = None
    if d.train_ann is None:
        if not d.synthetic:
            raise ValueError("data.train_ann and data.train_images are not set; give COCO-format paths or set data.synthetic=true")
        if info.is_main:
            _synthetic_set(out / "train", d.synthetic_train_images, SYNTH_TRAIN_SEED + cfg.train.seed, d.skeleton)
        train_ann, train_images = out / "train" / "annotations.json", out / "train" / "images"
    else:
        train_ann, train_images = Path(d.train_ann), Path(d.train_images or "")
    if d.val_ann is None and d.synthetic:
        if info.is_main:
            _synthetic_set(out / "val", d.synthetic_val_images, SYNTH_VAL_SEED + cfg.train.seed, d.skeleton)
            if held_out_images > 0:
                _synthetic_set(out / "held_out", held_out_images, SYNTH_HELD_OUT_SEED + cfg.train.seed, d.skeleton)
        val_ann, val_images = out / "val" / "annotations.json", out / "val" / "images"
        held_out = out / "held_out" / "annotations.json" if held_out_images > 0 else None
    elif d.val_ann is not None:
        val_ann, val_images = Path(d.val_ann), Path(d.val_images or "")
    else:
        val_ann = val_images = None
    barrier()
    for path in (train_ann, val_ann):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
    return DataPaths(train_ann, train_images, val_ann, val_images, held_out)


def checked_coco(cfg: Config, ann: Path, images: Path, skeleton: Skeleton) -> CocoKeypoints:
    """A run's COCO keypoint file (the annotations of ``skeleton``'s categories), read and checked, with
    every image it trains on checked up front (in the folder, present, a header of its entry's size
    within ``data.max_image_pixels``), so a bad image stops the run before its first step, not in the
    middle of an epoch."""
    coco = CocoKeypoints(ann, images, skeleton=skeleton.annotation_layout(), max_image_pixels=cfg.data.max_image_pixels,
                         images_anywhere=cfg.data.images_anywhere)
    coco.check_images()
    return coco


def bottomup_datasets(cfg: Config, paths: DataPaths, codec: Codec) -> tuple[Dataset, Dataset | None]:
    """(train, val or None) datasets of whole images for a bottom-up model (``data`` section: the augmentation)."""
    def dataset(ann: Path, images: Path, train: bool) -> Dataset:
        return BottomUpTrainDataset(checked_coco(cfg, ann, images, codec.skeleton), codec, cfg.data, train=train,
                                    seed=cfg.train.seed,
                                    input_norm=cfg.model.resolved_input_norm)

    val = dataset(paths.val_ann, paths.val_images, False) if paths.val_ann is not None else None
    return dataset(paths.train_ann, paths.train_images, True), val


def topdown_datasets(cfg: Config, paths: DataPaths, codec: Codec) -> tuple[Dataset, Dataset | None]:
    """(train, val or None) datasets of person crops for a top-down model (``topdown`` section: the augmentation)."""
    def dataset(ann: Path, images: Path, train: bool) -> Dataset:
        people = TopDownInstances.from_coco(checked_coco(cfg, ann, images, codec.skeleton))
        return TopDownDataset(people, codec, cfg.topdown, train=train, seed=cfg.train.seed,
                              input_norm=cfg.model.resolved_input_norm)

    val = dataset(paths.val_ann, paths.val_images, False) if paths.val_ann is not None else None
    return dataset(paths.train_ann, paths.train_images, True), val


@dataclass(frozen=True)
class Loaders:
    """A branch's training loader (with its sampler, for ``set_epoch``) and validation loader (or None)."""

    train: DataLoader
    sampler: DistributedSampler
    val: DataLoader | None


def make_loaders(cfg: Config, train_ds: Any, val_ds: Any, info: DistInfo, device: torch.device,
                 source: Path, sample_kind: str) -> Loaders:
    """DataLoaders of a branch's datasets: a seeded distributed sampler for training, shards for validation.

    Raises ValueError naming ``source`` when the training set holds less than one batch of
    ``sample_kind`` ("training images", "person crops") over all processes.
    """
    d, t = cfg.data, cfg.train
    if len(train_ds) < t.batch_size * info.world_size:
        raise ValueError(f"{source}: {len(train_ds)} {sample_kind}, fewer than one batch "
                         f"(train.batch_size {t.batch_size} x {info.world_size} processes)")
    # The same sampler alone and under DDP: the order depends only on (seed, epoch).
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=t.seed)
    common: dict[str, Any] = dict(num_workers=d.num_workers, pin_memory=device.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train_ds, batch_size=t.batch_size, sampler=sampler, drop_last=True, **common)
    val_loader = None
    if val_ds is not None and len(val_ds):
        val_loader = DataLoader(val_ds, batch_size=t.batch_size,
                                sampler=ShardSampler(len(val_ds), info.rank, info.world_size), **common)
    return Loaders(train_loader, sampler, val_loader)
