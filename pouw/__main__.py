"""``python -m pouw``: the standalone protocol command line (mine, verify).

The protocol library never imports a compute backend; only this entry point
does, and lazily, because ``mine`` needs one. The command line itself lives in
``kernels.cli`` (``kernels`` may import ``pouw``, not the other way round).
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("kernels.cli").main())
