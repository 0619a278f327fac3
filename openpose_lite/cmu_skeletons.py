"""The keypoint layouts of CMU OpenPose's other models, in CMU's order: ``BODY_25`` (with feet), ``MPI_15``,
and the per-person ``HAND_21`` and ``FACE_70`` (:mod:`openpose_lite.skeleton` holds the COCO person layouts).

Read from CMU-Perceptual-Computing-Lab/openpose: src/openpose/pose/poseParameters.cpp (body parts, pairs and
their PAF channels), include/openpose/pose/poseParametersRender.hpp, include/openpose/hand/handParameters.hpp
and include/openpose/face/faceParameters.hpp (the drawn pairs).
"""

from __future__ import annotations

from openpose_lite.skeleton import OPENPOSE_18, Skeleton

__all__ = ["BODY_25", "FACE_70", "HAND_21", "MPI_15"]

# CMU's BODY_25 model (pose_iter_584000): OPENPOSE_18's keypoints with a mid-hip after the arms, then six
# foot points (OpenPose src/openpose/pose/poseParameters.cpp, POSE_BODY_25_BODY_PARTS). Limb i owns PAF channels
# (2i, 2i+1): CMU's pairs (POSE_BODY_PART_PAIRS) ordered by their channels (POSE_MAP_INDEX).
_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
BODY_25 = Skeleton(
    name="body25",
    keypoints=OPENPOSE_18.keypoints[:8] + ("mid_hip",) + OPENPOSE_18.keypoints[8:] + _FEET,
    limbs=(
        (1, 8), (9, 10), (10, 11), (8, 9), (8, 12), (12, 13), (13, 14), (1, 2), (2, 3), (3, 4),
        (2, 17), (1, 5), (5, 6), (6, 7), (5, 18), (1, 0), (0, 15), (0, 16), (15, 17), (16, 18),
        (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (9, 12), (10, 13), (11, 14), (15, 16), (17, 18), (19, 22), (20, 23),
                (21, 24)),
    # OPENPOSE_18's sigmas, the hips' for the mid-hip, and COCO-WholeBody's for the feet
    # (open-mmlab/mmpose configs/_base_/datasets/coco_wholebody.py).
    sigmas=OPENPOSE_18.sigmas[:8] + (0.107,) + OPENPOSE_18.sigmas[8:] + (0.068, 0.066, 0.066, 0.092, 0.094, 0.094),
    background=True,
    # The shoulder-ear limbs, as in OPENPOSE_18: they join parts of a person, and drawings leave them out.
    redundant_limbs=(10, 14),
    hidden_limbs=(10, 14),
)

# CMU's MPI model (pose_iter_160000): 15 keypoints in CMU's order (POSE_MPI_BODY_PARTS: a head, then
# OPENPOSE_18's neck, arms and legs, then a chest), its 14 limbs in PAF channel order
# (POSE_MPI_PAIRS_RENDER_GPU; POSE_MAP_INDEX numbers them in that order).
MPI_15 = Skeleton(
    name="mpi15",
    keypoints=("head",) + OPENPOSE_18.keypoints[1:14] + ("chest",),
    limbs=(
        (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 14), (14, 8), (8, 9),
        (9, 10), (14, 11), (11, 12), (12, 13),
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    # OPENPOSE_18's sigmas; the head and chest, which COCO does not label, take the shoulders' (as the neck does).
    sigmas=(0.079,) + OPENPOSE_18.sigmas[1:14] + (0.079,),
    background=True,
)

# CMU's hand model (pose_iter_102000): 21 keypoints of one hand, the wrist then four per finger from the palm
# out; limbs as OpenPose draws them (include/openpose/hand/handParameters.hpp, HAND_PAIRS_RENDER_GPU). A hand
# has no left/right pairs: a mirrored left hand is a right hand. Sigmas: COCO-WholeBody's hand.
HAND_21 = Skeleton(
    name="hand21",
    keypoints=("wrist",) + tuple(f"{finger}{i}" for finger in ("thumb", "index", "middle", "ring", "pinky")
                                 for i in range(1, 5)),
    limbs=tuple((0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4)),
    flip_pairs=(),
    sigmas=(
        0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018,
        0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.02, 0.019, 0.022, 0.031,
    ),
)

# CMU's face model (pose_iter_116000): the 68 points of the iBUG 300-W layout and the two pupils (68, 69);
# limbs as OpenPose draws them (include/openpose/face/faceParameters.hpp, FACE_PAIRS_RENDER_GPU), mirror
# pairs and sigmas as COCO-WholeBody gives the 68 (the pupils take COCO's eye sigma).
_FACE_CHAINS = ((0, 16), (17, 21), (22, 26), (27, 30), (31, 35))
_FACE_LOOPS = ((36, 41), (42, 47), (48, 59), (60, 67))
FACE_70 = Skeleton(
    name="face70",
    keypoints=tuple(f"face{i}" for i in range(70)),
    limbs=tuple((i, i + 1) for a, b in _FACE_CHAINS for i in range(a, b))
    + tuple(pair for a, b in _FACE_LOOPS for pair in [(i, i + 1) for i in range(a, b)] + [(b, a)]),
    flip_pairs=tuple((i, 16 - i) for i in range(8)) + ((17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35),
                                                       (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47),
                                                       (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
                                                       (60, 64), (61, 63), (65, 67), (68, 69)),
    sigmas=(
        0.042, 0.043, 0.044, 0.043, 0.04, 0.035, 0.031, 0.025, 0.02, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043,
        0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
        0.007, 0.012, 0.009, 0.008, 0.016, 0.01, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011,
        0.012, 0.01, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.01, 0.008, 0.009, 0.009, 0.009, 0.007,
        0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.01, 0.008, 0.025, 0.025,
    ),
)
