"""Training samples: one pipeline for both branches, from an annotated image to tensors.

Sample ``i`` of epoch ``e`` (:class:`TrainingSamples`):

1. every random draw comes from a generator seeded by ``(seed, e, i)``, so a sample is the same in any
   worker and in any order (call :meth:`~TrainingSamples.set_epoch` before each epoch, with
   ``persistent_workers=False`` so DataLoader workers pick it up);
2. the image, its people's keypoints (N, K, 3) and, bottom-up, the ignore mask are loaded;
3. the branch's sampler (:mod:`openpose_lite.transforms`) draws **one** affine image -> network input
   (without augmentation: bottom-up the whole image fitted into the crop, top-down the padded box);
4. :func:`~openpose_lite.transforms.warp_sample` pushes image, mask and keypoints through it;
5. the codec turns the keypoints into targets and loss weights (``encode(keypoints, input_hw, ignore_mask)``);
6. the model family's input normalisation (:mod:`openpose_lite.preprocess`) and tensors.

An image that cannot be read in step 2 does not stop the epoch: it is logged and counted
(:attr:`TrainingSamples.skipped`) and the sample is made from another item, drawn from
``(seed, e, i, attempt)``, with sample ``i``'s own draws; :data:`MAX_UNREADABLE_IN_A_ROW`
unreadable items in a row stop the run (the image folder is gone, not one file).
Shape legend: N people, K keypoints, H x W network input, h x w map size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from openpose_lite.codecs.base import Codec
from openpose_lite.data.coco import Sample
from openpose_lite.data.people import PersonInstance, TopDownInstances
from openpose_lite.transforms import (AugmentParams, Region, TopDownAugmentParams, choose_main_person, random_affine,
                                      random_region, warp_sample)
from openpose_lite.geometry import box_to_center_scale, crop_affine
from openpose_lite.images import ImageReadError
from openpose_lite.preprocess import CROP_PAD_VALUE, INPUT_NORMALISERS, PAD_VALUE, person_crop_affine
from openpose_lite.skeleton import COCO_17, Skeleton

__all__ = ["MAX_UNREADABLE_IN_A_ROW", "BottomUpTrainDataset", "PreparedSample", "TopDownDataset", "TopDownSample",
           "TrainingSamples"]

logger = logging.getLogger(__name__)

# Unreadable items tried in a row for one sample before the run stops: with a tenth of the set
# unreadable, one sample in 10^10 would stop it; with every image gone, the first stops at once.
MAX_UNREADABLE_IN_A_ROW = 10
# Slots of the count of skipped images: the main process's, and one for each DataLoader worker.
_SKIP_SLOTS = 257


@dataclass(frozen=True)
class Annotated:
    """One item before augmentation: ``image`` (H, W, 3) uint8 BGR, ``keypoints`` (N, K, 3) image
    px, ``ignore_mask`` (H, W) bool or None, ``boxes`` (N, 4) x, y, w, h or None."""

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray | None
    boxes: np.ndarray | None


@dataclass(eq=False)
class PreparedSample:
    """One sample before normalisation and tensors: ``image`` (H, W, 3) uint8 network input, ``keypoints``
    (N, K, 3) in input px, ``targets`` / ``weights`` the codec's, ``matrix`` (2, 3) image px -> input px,
    ``region`` the top-down crop region (None bottom-up)."""

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray | None
    targets: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    matrix: np.ndarray
    flipped: bool
    region: Region | None = None


def _tensors(maps: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)) for name, m in maps.items()}


class TrainingSamples(Dataset):
    """The shared pipeline of the module docstring; a branch supplies :meth:`_load` and :meth:`_draw`.
    ``normalise``: (H, W, 3) uint8 -> (3, H, W) float32; ``train``: augment, else the deterministic view."""

    def __init__(self, codec: Codec, skeleton: Skeleton, input_hw: tuple[int, int],
                 normalise: Callable[[np.ndarray], np.ndarray], pad_value: int, train: bool, seed: int) -> None:
        self.codec = codec
        self.skeleton = skeleton
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.normalise = normalise
        self.pad_value = int(pad_value)
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        # In shared memory, so the counts of the DataLoader workers (copies of this object in other
        # processes) reach the main process; each process adds to its own slot only, so no count is lost.
        self._skipped = torch.zeros(_SKIP_SLOTS, dtype=torch.int64).share_memory_()

    @property
    def skipped(self) -> int:
        """How many times an item could not be read and another was used instead (every DataLoader worker's)."""
        return int(self._skipped.sum())

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (a new augmentation per epoch, reproducibly)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int) -> Annotated:
        """Item ``index`` (0 <= index < len), before augmentation."""
        raise NotImplementedError

    def _draw(self, rng: np.random.Generator, item: Annotated) -> tuple[np.ndarray, bool, Region | None]:
        """(matrix (2, 3) image px -> input px, mirrored, top-down region or None)."""
        raise NotImplementedError

    def _load_readable(self, index: int) -> Annotated:
        """Item ``index``, or where it cannot be read another (see the module docstring)."""
        tried, failed = index, 0
        while True:
            try:
                return self._load(tried)
            except ImageReadError as exc:
                worker = torch.utils.data.get_worker_info()
                self._skipped[0 if worker is None else 1 + worker.id % (_SKIP_SLOTS - 1)] += 1
                failed += 1
                if failed == MAX_UNREADABLE_IN_A_ROW:
                    raise ImageReadError(f"{failed} items in a row could not be read, the last: {exc}; is the image "
                                         "folder still there?") from None
                tried = int(np.random.default_rng((self.seed, self.epoch, index, failed)).integers(len(self)))
                logger.warning("skipped, cannot be read: %s; sample %d of epoch %d is made from item %d instead",
                               exc, index, self.epoch + 1, tried)

    def prepare(self, index: int) -> PreparedSample:
        """Sample ``index`` of the current epoch, before normalisation (what ``dataset[index]`` tensorises)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        item = self._load_readable(index)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        matrix, flipped, region = self._draw(rng, item)
        image, mask, keypoints = warp_sample(item.image, item.ignore_mask, np.asarray(item.keypoints, np.float32),
                                             matrix, self.input_hw, flipped, self.skeleton, self.pad_value)
        targets, weights = self.codec.encode(keypoints, self.input_hw, mask)
        return PreparedSample(image, keypoints, mask, targets, weights, matrix, flipped, region)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        s = self.prepare(index)
        return torch.from_numpy(self.normalise(s.image)), _tensors(s.targets), _tensors(s.weights)


class BottomUpTrainDataset(TrainingSamples):
    """Samples (``image``, ``keypoints`` (N, K, 3), ``ignore_mask``, ``boxes``) -> ``dataset[i]`` =
    ``(image (3, C, C) float32, targets {"heatmaps": (K+1, h, w), "pafs": (2L, h, w)}, weights {"heatmaps":
    (1, h, w), "pafs": (1, h, w)})`` for the bottom-up model, C = ``params.crop_size``. ``skeleton``: default
    the source's, else COCO_17."""

    def __init__(self, source: Sequence[Sample], codec: Codec, params: AugmentParams,
                 train: bool = True, seed: int = 0, skeleton: Skeleton | None = None, input_norm: str = "cmu") -> None:
        crop = int(params.crop_size)
        skeleton = skeleton or getattr(source, "skeleton", None) or COCO_17
        super().__init__(codec, skeleton, (crop, crop), INPUT_NORMALISERS[input_norm], PAD_VALUE, train, seed)
        self.source = source
        self.params = params

    def __len__(self) -> int:
        return len(self.source)

    def _load(self, index: int) -> Annotated:
        s = self.source[index]
        return Annotated(s.image, s.keypoints, s.ignore_mask, getattr(s, "boxes", None))

    def _draw(self, rng: np.random.Generator, item: Annotated) -> tuple[np.ndarray, bool, None]:
        h, w = item.image.shape[:2]
        if not self.train:
            side = float(max(h, w))
            return crop_affine(np.array([(w - 1) * 0.5, (h - 1) * 0.5]), np.array([side, side]), self.input_hw), False, None
        center, height = choose_main_person(rng, np.asarray(item.keypoints), item.boxes)
        matrix, flipped = random_affine(rng, (h, w), center, height, self.params)
        return matrix, flipped, None


@dataclass(eq=False)
class TopDownSample:
    """One prepared crop, before tensors (for inspection, drawing and tests): ``image`` (H, W, 3) uint8 BGR;
    ``keypoints`` (K, 3) in crop px; ``heatmaps`` (K, h, w) and ``target_weights`` (K,) from the codec; ``matrix``
    (2, 3) image px -> crop px; the crop region's ``center`` (2,), ``size`` (2,) = (w, h) in image px, ``rotation``
    in degrees."""

    image: np.ndarray
    keypoints: np.ndarray
    heatmaps: np.ndarray
    target_weights: np.ndarray
    matrix: np.ndarray
    center: np.ndarray
    size: np.ndarray
    rotation: float
    flipped: bool
    half_body: bool


class TopDownDataset(TrainingSamples):
    """People -> ``dataset[i]`` = ``(crop (3, H, W) float32, {"heatmaps": (K, h, w)}, {"heatmaps": (K, 1, 1)})``
    for HRNet-style training, the weights for :func:`~openpose_lite.losses.keypoint_mse_loss`. ``codec``: crop
    size, heatmap size, sigma, convention; its skeleton must be the instances'."""

    def __init__(self, instances: TopDownInstances, codec: Codec, params: TopDownAugmentParams | None = None,
                 train: bool = True, seed: int = 0, input_norm: str = "imagenet_rgb") -> None:
        if codec.skeleton.num_keypoints != instances.skeleton.num_keypoints:
            raise ValueError(f"TopDownDataset: codec skeleton {codec.skeleton.name} does not match the "
                             f"instances' {instances.skeleton.name}")
        super().__init__(codec, codec.skeleton, codec.input_hw, INPUT_NORMALISERS[input_norm], CROP_PAD_VALUE, train,
                         seed)
        self.instances = instances
        self.params = params or TopDownAugmentParams()
        h, w = self.input_hw
        self.aspect_ratio = w / h

    def __len__(self) -> int:
        return len(self.instances)

    def _load(self, index: int) -> Annotated:
        person: PersonInstance = self.instances[index]
        kps = np.asarray(person.keypoints, dtype=np.float32)[None]
        return Annotated(self.instances.load_image(index), kps, None, np.asarray(person.box, np.float64)[None])

    def _draw(self, rng: np.random.Generator, item: Annotated) -> tuple[np.ndarray, bool, Region]:
        convention = self.codec.convention
        region = Region(*box_to_center_scale(item.boxes[0], self.aspect_ratio, self.params.padding, convention))
        if self.train:
            region = random_region(rng, region, item.keypoints[0], self.params, self.aspect_ratio, self.skeleton)
        matrix = person_crop_affine(region.center, region.size, region.rotation, self.input_hw, region.flipped,
                                    convention)
        return matrix, region.flipped, region

    def sample(self, index: int) -> TopDownSample:
        """The prepared crop of person ``index`` for the current epoch (what ``dataset[index]`` tensorises)."""
        s = self.prepare(index)
        r = s.region
        return TopDownSample(s.image, s.keypoints[0], s.targets["heatmaps"], s.weights["heatmaps"].reshape(-1),
                             s.matrix, r.center, r.size, r.rotation, r.flipped, r.half_body)
