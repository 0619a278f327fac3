"""The COCO keypoint format: checking a file (``validation``), its compressed RLE masks (``rle``) and
the skeleton a file states (``skeleton``: names, limbs, flip pairs, sigmas, completed limbs)."""
