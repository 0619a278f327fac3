"""Top-down vs bottom-up: speed as people multiply, accuracy on the same images.

A thin wrapper over ``openpose-lite bench`` (the code lives in :mod:`openpose_lite.bench`);
it takes the same options and prints the same tables and reproducing command:

    python benchmarks/bench_compare.py [--people 1 2 4 8 16 32] [--size 480 640] [--ann FILE] ...
"""

from __future__ import annotations

import sys

from openpose_lite.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
