"""``python3 -m kernel_env.gpucheck OUTDIR``: the entry point."""

import sys

from .cli import main

sys.exit(main())
