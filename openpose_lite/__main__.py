"""``python -m openpose_lite`` is the same as the ``openpose-lite`` command."""

import sys

from openpose_lite.cli import main

if __name__ == "__main__":
    sys.exit(main())
