"""What a run trains on: its skeleton, the data files or generated scenes, the validation set, the loaders.

Before the run writes anything, in this order: :func:`read_source` (the training file read once, the
skeleton chosen), :func:`read_data` (the COCO files and every image checked, :func:`checked_coco`; the
validation set: ``data.val_ann``, else ``data.val_split`` of the training file's images), and
:func:`make_loaders` (a training sampler whose order depends only on the seed and the epoch, so a resumed
run sees the batches the uninterrupted one would have; a padding-free shard sampler for validation).
Once the run owns its folder (rank 0): a synthetic run's scenes (:func:`generate_scenes`, in
``<output_dir>/data/``, reused when generated with the same settings) or the held-out part of a
training file (:func:`write_val_split`: ``data/val_split``, which the COCO AP is computed on).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from openpose_lite.coco.skeleton import skeleton_of_coco, skeleton_of_file
from openpose_lite.codecs.base import Codec
from openpose_lite.config import Config
from openpose_lite.data.coco import CocoKeypoints, Sample
from openpose_lite.coco.validation import AnnotationError, CocoLayout, read_coco_keypoints
from openpose_lite.data.people import TopDownInstances, person_instances
from openpose_lite.data.samples import BottomUpTrainDataset, TopDownDataset, TrainingSamples
from openpose_lite.data.figures import People
from openpose_lite.data.skeleton_figures import NAMED_PEOPLE, PoseBank, scene_figures
from openpose_lite.data.synthetic import scene_set_fingerprint, write_dataset
from openpose_lite.io import plural, read_json, write_json_atomic
from openpose_lite.skeleton import COCO_17, Skeleton
from openpose_lite.training.distributed import DistInfo, ShardSampler, all_reduce_sum, barrier

__all__ = ["DataPaths", "ImageSet", "Loaders", "RunData", "Source", "bottomup_datasets", "checked_coco",
           "fitting_batch", "generate_scenes", "generates_scenes", "held_out_items", "make_loaders", "read_data",
           "read_source", "skipped_since", "topdown_datasets", "write_val_split",
           "DECODE_CHECK_MAX_IMAGES", "HELD_OUT_IMAGES"]

logger = logging.getLogger(__name__)

# The largest set whose images are all decoded before a run starts (checked_coco): at about 3 ms an
# image on one core (a 640 x 480 COCO JPEG, on an AMD EPYC Zen 4), 20,000 take about a minute;
# COCO train2017's 118k would take several minutes at every start and resume, so a larger set's
# images are checked from their headers and one that fails to decode is skipped and counted.
DECODE_CHECK_MAX_IMAGES = 20_000
# Generated scenes: image i of a set is drawn from default_rng([seed, i]) (data.synthetic), so
# these offsets on train.seed keep the three sets disjoint. The images a training file holds out
# for validation are drawn from default_rng(VAL_SPLIT_SEED + train.seed).
SYNTH_TRAIN_SEED, SYNTH_VAL_SEED, SYNTH_HELD_OUT_SEED, VAL_SPLIT_SEED = 1000, 2000, 3000, 4000
HELD_OUT_IMAGES = 100


@dataclass(frozen=True)
class DataPaths:
    """The annotation files and image folders of a run (validation and held-out: None when absent)."""

    train_ann: Path
    train_images: Path
    val_ann: Path | None
    val_images: Path | None
    held_out_ann: Path | None = None

    @classmethod
    def given(cls, cfg: Config) -> DataPaths:
        """The files the config names."""
        d = cfg.data
        val = (Path(d.val_ann), Path(d.val_images or "")) if d.val_ann is not None else (None, None)
        return cls(Path(d.train_ann or ""), Path(d.train_images or ""), *val)

    def generated(self, output_dir: Path) -> list[Path]:
        """The sets among these paths that the run writes (folders inside ``output_dir``)."""
        return sorted({p.parent for p in (self.train_ann, self.val_ann, self.held_out_ann)
                       if p is not None and output_dir in p.parents})


def generates_scenes(cfg: Config) -> bool:
    """Whether the run trains on generated scenes (``data.synthetic`` and no ``data.train_ann``), which
    :func:`generate_scenes` writes once the run owns its folder."""
    return cfg.data.synthetic and cfg.data.train_ann is None


@dataclass(frozen=True)
class Source:
    """What a run's model is built for: the ``skeleton``, and the training ``file`` as
    :func:`~openpose_lite.coco.validation.read_coco_keypoints` read it, or the ``bank`` of figures that
    generated scenes are drawn with (None: COCO people)."""

    skeleton: Skeleton
    file: tuple[dict[str, Any], CocoLayout] | None = None
    bank: PoseBank | People | None = None


def read_source(cfg: Config, named: bool | None) -> tuple[Config, Source, str | None]:
    """(``cfg``, the run's :class:`Source`, a note or None), before anything else of the run is read. With a
    training file, the skeleton is the file's own unless ``data.skeleton`` names one the file has a category
    of; else one ``named`` by an override is refused, and a config file's gives way to the file's own
    (``cfg.data.skeleton`` becomes None; the note says so). ``named`` None (a resumed run): kept as started."""
    d = cfg.data
    if generates_scenes(cfg):
        bank = scene_figures(d.skeleton) if d.skeleton is not None else None
        return cfg, Source(bank.skeleton if bank is not None else COCO_17, bank=bank), None
    if d.train_ann is None:
        raise ValueError("data.train_ann and data.train_images are not set; give COCO-format paths or set data.synthetic=true")
    file = read_coco_keypoints(d.train_ann)
    if d.skeleton is None or Path(d.skeleton) == Path(d.train_ann):
        return cfg, Source(skeleton_of_coco(*file, str(d.train_ann))[0], file), None
    wanted = NAMED_PEOPLE.get(str(d.skeleton)) or skeleton_of_file(d.skeleton)
    try:
        if named is not None:
            layout = wanted.annotation_layout()
            file[1].select(layout.keypoints, d.train_ann, layout.name)
        return cfg, Source(wanted, file), None
    except AnnotationError as exc:
        if named:
            raise AnnotationError(f"{exc}; data.skeleton={d.skeleton} names a skeleton this file cannot be trained "
                                  "or scored with (leave data.skeleton out to train the file's own)") from None
    own = skeleton_of_coco(*file, str(d.train_ann))[0]
    note = (f"skeleton: {d.train_ann}'s own, {own.name!r} ({own.num_keypoints} keypoints); the config's data.skeleton "
            f"{d.skeleton} ({wanted.name!r}, {wanted.num_keypoints} keypoints) is not a skeleton of this file and is "
            "not used")
    return dataclasses.replace(cfg, data=dataclasses.replace(d, skeleton=None)), Source(own, file), note


def _holds_set(out_dir: Path, fingerprint: str) -> bool:
    """Whether ``out_dir`` holds a whole generated set of ``fingerprint``: its annotation file (written
    last) records it, and every image the file lists is there."""
    try:
        data = read_json(out_dir / "annotations.json", "annotation file")
        return (data["info"]["fingerprint"] == fingerprint
                and all((out_dir / "images" / img["file_name"]).is_file() for img in data["images"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return False  # none, a damaged file, or one written before fingerprints: not this set


def _synthetic_set(out_dir: Path, num_images: int, seed: int, bank: PoseBank | People | None) -> Path:
    """Write generated scenes unless ``out_dir`` holds this very set (same seed, count, scene
    settings and figures: :func:`~openpose_lite.data.synthetic.scene_set_fingerprint`)."""
    if _holds_set(out_dir, scene_set_fingerprint(num_images, seed, bank=bank)):
        return out_dir / "annotations.json"
    if out_dir.exists():
        logger.warning("%s holds scenes generated with other settings (seed, count or figures): generating them again",
                       out_dir)
        shutil.rmtree(out_dir / "images", ignore_errors=True)  # none of another set's images stays behind
    logger.info("generating %d scenes (seed %d) into %s", num_images, seed, out_dir)
    return write_dataset(out_dir, num_images, seed, bank=bank)


def generate_scenes(cfg: Config, info: DistInfo, held_out_images: int, bank: PoseBank | People | None) -> DataPaths:
    """A synthetic run's sets in ``<output_dir>/data/``, written by rank 0 where missing: ``train``, and
    ``val`` and ``held_out`` (training never sees it) unless ``data.val_ann`` is given."""
    out, d = Path(cfg.train.output_dir) / "data", cfg.data
    sets = [("train", d.synthetic_train_images, SYNTH_TRAIN_SEED)]
    if d.val_ann is None:
        sets += [("val", d.synthetic_val_images, SYNTH_VAL_SEED), ("held_out", held_out_images, SYNTH_HELD_OUT_SEED)]
    if info.is_main:
        for name, count, offset in sets:
            if count > 0:
                _synthetic_set(out / name, count, offset + cfg.train.seed, bank)
    barrier()
    if d.val_ann is not None:
        return dataclasses.replace(DataPaths.given(cfg), train_ann=out / "train" / "annotations.json",
                                   train_images=out / "train" / "images")
    held_out = out / "held_out" / "annotations.json" if held_out_images > 0 else None
    return DataPaths(out / "train" / "annotations.json", out / "train" / "images", out / "val" / "annotations.json",
                     out / "val" / "images", held_out)


@dataclass(frozen=True)
class ImageSet:
    """Some images of a checked COCO file: ``coco``'s items at ``items``."""

    coco: CocoKeypoints
    items: tuple[int, ...]

    @classmethod
    def whole(cls, coco: CocoKeypoints) -> ImageSet:
        return cls(coco, tuple(range(len(coco))))

    @property
    def skeleton(self) -> Skeleton:
        return self.coco.skeleton

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        return self.coco[self.items[index]]


@dataclass(frozen=True)
class RunData:
    """What a run trains and validates on, read and checked (``val`` None: no validation); ``val_split``:
    the training file's entries of the images held out for validation, which :func:`write_val_split`
    writes to ``paths.val_ann`` (None when nothing is held out); ``note``: what the run validates on."""

    paths: DataPaths
    train: ImageSet
    val: ImageSet | None
    val_split: dict[str, Any] | None
    note: str


def held_out_items(count: int, fraction: float, seed: int) -> tuple[int, ...]:
    """The indices, among ``count`` images, held out for validation: ``round(fraction * count)`` of them,
    at least one and leaving at least one to train on, drawn from ``default_rng(VAL_SPLIT_SEED + seed)``,
    in increasing order; () for ``fraction`` 0 or fewer than two images."""
    if fraction <= 0 or count < 2:
        return ()
    size = min(count - 1, max(1, round(fraction * count)))
    chosen = np.random.default_rng(VAL_SPLIT_SEED + seed).choice(count, size=size, replace=False)
    return tuple(sorted(int(i) for i in chosen))


def read_data(cfg: Config, paths: DataPaths, skeleton: Skeleton, progress: bool = False,
              train_file: tuple[dict[str, Any], CocoLayout] | None = None, val: CocoKeypoints | None = None) -> RunData:
    """Read and check the run's files (:func:`checked_coco`) and choose its validation set: ``paths.val_ann``
    when set (``val``: that file, checked already), else ``data.val_split`` of the training file's images
    with a labelled instance (:func:`held_out_items`), else none. ``train_file``: as :class:`Source` read it.
    Never writes."""
    d = cfg.data
    train_file = train_file or read_coco_keypoints(paths.train_ann)
    train = checked_coco(cfg, paths.train_ann, paths.train_images, skeleton, progress, train_file)
    given = d.synthetic and d.train_ann is not None
    unused = " (data.synthetic is not used: a training file is given)" if given else ""
    if paths.val_ann is not None:
        val = val or checked_coco(cfg, paths.val_ann, paths.val_images, skeleton, progress)
        generated = Path(cfg.train.output_dir) in paths.val_ann.parents
        what = f"{len(val)} generated scenes in {paths.val_ann.parent}" if generated else \
            f"{paths.val_ann} ({plural(len(val), 'image')} with a labelled instance)"
        return RunData(paths, ImageSet.whole(train), ImageSet.whole(val), None, f"validation: {what}{unused}")
    held = held_out_items(len(train), d.val_split, cfg.train.seed)
    if not held:
        why = "data.val_split is 0" if d.val_split <= 0 else \
            f"{paths.train_ann} has {plural(len(train), 'image')} with a labelled instance, none to spare"
        return RunData(paths, ImageSet.whole(train), None, None,
                       f"validation: none ({why}); best.pt follows the training loss{unused}")
    kept = tuple(sorted(set(range(len(train))) - set(held)))
    paths = dataclasses.replace(paths, val_ann=Path(cfg.train.output_dir) / "data" / "val_split" / "annotations.json",
                                val_images=paths.train_images)
    image_ids, source = train.image_ids, train_file[0]
    ids = {image_ids[i] for i in held}
    split = {**source, "images": [img for img in source["images"] if img.get("id") in ids],
             "annotations": [a for a in source["annotations"] if a.get("image_id") in ids]}
    note = (f"validation: {len(held)} of the {len(train)} images (with a labelled instance) of {paths.train_ann}, held "
            f"out of training by data.val_split {d.val_split:g} (at least 1, drawn with train.seed {cfg.train.seed}) "
            f"and listed in {paths.val_ann}; training on the other {len(kept)}{unused}")
    return RunData(paths, ImageSet(train, kept), ImageSet(train, held), split, note)


def write_val_split(data: RunData) -> Path | None:
    """Write the training file's held-out images (their annotations, the file's other keys as they are) to
    ``data.paths.val_ann``, atomically; None when nothing is held out."""
    return write_json_atomic(data.paths.val_ann, data.val_split) if data.val_split is not None else None


def checked_coco(cfg: Config, ann: Path, images: Path, skeleton: Skeleton, progress: bool = False,
                 read: tuple[dict[str, Any], CocoLayout] | None = None) -> CocoKeypoints:
    """A run's COCO keypoint file (``skeleton``'s categories), every image checked up front (present, a header
    of its entry's size within ``data.max_image_pixels``; decoded in a set of at most
    :data:`DECODE_CHECK_MAX_IMAGES` the run did not generate), so a bad image stops the run before its first
    step. ``read``: ``read_coco_keypoints(ann)``'s result."""
    layout = skeleton.annotation_layout()
    if read is not None:
        read = (read[0], read[1].select(layout.keypoints, str(ann), layout.name))
    coco = CocoKeypoints(ann, images, skeleton=layout, max_image_pixels=cfg.data.max_image_pixels,
                         images_anywhere=cfg.data.images_anywhere, read=read)
    generated = Path(cfg.train.output_dir) in Path(ann).parents  # scenes this run wrote: sound by construction
    coco.check_images(decode=len(coco) <= DECODE_CHECK_MAX_IMAGES and not generated,
                      workers=torch.get_num_threads(), progress=progress)
    return coco


def bottomup_datasets(cfg: Config, data: RunData, codec: Codec) -> tuple[Dataset, Dataset | None]:
    """(train, val or None) datasets of whole images for a bottom-up model (``data`` section: the augmentation)."""
    def dataset(images: ImageSet, train: bool) -> Dataset:
        return BottomUpTrainDataset(images, codec, cfg.data, train=train, seed=cfg.train.seed,
                                    skeleton=images.skeleton, input_norm=cfg.model.resolved_input_norm)

    return dataset(data.train, True), (dataset(data.val, False) if data.val is not None else None)


def topdown_datasets(cfg: Config, data: RunData, codec: Codec) -> tuple[Dataset, Dataset | None]:
    """(train, val or None) datasets of person crops for a top-down model (``topdown`` section: the augmentation)."""
    found = {id(data.train.coco): person_instances(data.train.coco)}  # a held-out split shares the training file's

    def dataset(images: ImageSet, train: bool) -> Dataset:
        chosen = set(images.items)
        everyone = found.get(id(images.coco)) or person_instances(images.coco)
        people = [p for p in everyone if p.image_index in chosen]
        return TopDownDataset(TopDownInstances(people, images.coco.load_image, images.skeleton), codec, cfg.topdown,
                              train=train, seed=cfg.train.seed, input_norm=cfg.model.resolved_input_norm)

    return dataset(data.train, True), (dataset(data.val, False) if data.val is not None else None)


def skipped_since(dataset: TrainingSamples, before: int, device: torch.device, what: str) -> int:
    """How many unreadable items ``dataset`` skipped since its :attr:`~TrainingSamples.skipped` was ``before``,
    over every rank (every rank calls this), in a warning when any."""
    count = int(all_reduce_sum(torch.tensor([float(dataset.skipped - before)], device=device)).item())
    if count:  # each one is named in a warning where it was met
        logger.warning("%s: %d images could not be read in this epoch and gave their place to others", what, count)
    return count


@dataclass(frozen=True)
class Loaders:
    """A branch's training loader (with its sampler, for ``set_epoch``) and validation loader (or None);
    ``batch_size``: per process; ``note``: why it is not ``train.batch_size`` (or None)."""

    train: DataLoader
    sampler: DistributedSampler
    val: DataLoader | None
    batch_size: int
    note: str | None = None


def fitting_batch(batch_size: int, samples: int, world_size: int, sample_kind: str,
                  source: Path) -> tuple[int, str | None]:
    """(batch per process, note or None): ``batch_size``, or, when the training set holds fewer than one
    batch over all processes, as many as each process has, said in the note. Raises ValueError naming
    ``source`` when some process would have no sample."""
    if samples < world_size or samples == 0:
        raise ValueError(f"{source}: {plural(samples, sample_kind.rstrip('s'), sample_kind)} to train on, fewer "
                         f"than one per process ({world_size}); a training sample needs an annotation with a "
                         "labelled keypoint")
    if samples >= batch_size * world_size:
        return batch_size, None
    fitted = samples // world_size
    over = f" over {world_size} processes" if world_size > 1 else ""
    return fitted, (f"batch: train.batch_size {batch_size}{over} is more than the training set holds "
                    f"({plural(samples, sample_kind.rstrip('s'), sample_kind)} of {source}): training in batches of "
                    f"{fitted}{' per process' if over else ''}")


def make_loaders(cfg: Config, train_ds: Any, val_ds: Any, info: DistInfo, device: torch.device,
                 source: Path, sample_kind: str) -> Loaders:
    """DataLoaders of a branch's datasets, batches fitted by :func:`fitting_batch` (``sample_kind``: "training
    images", "person crops")."""
    d, t = cfg.data, cfg.train
    batch_size, note = fitting_batch(t.batch_size, len(train_ds), info.world_size, sample_kind, source)
    if note is not None:
        logger.info("%s", note)  # the caller reports it (TrainResult.notes)
    # The same sampler alone and under DDP: the order depends only on (seed, epoch).
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=t.seed)
    common: dict[str, Any] = dict(num_workers=d.num_workers, pin_memory=device.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, drop_last=True, **common)
    val_loader = None
    if val_ds is not None and len(val_ds):
        val_loader = DataLoader(val_ds, batch_size=t.batch_size,
                                sampler=ShardSampler(len(val_ds), info.rank, info.world_size), **common)
    return Loaders(train_loader, sampler, val_loader, batch_size, note)
