"""Modelled GPU time: price the work recorded in the sandbox (``kernel_env.inside.work``) on a named GPU.

Trusted side: imports only the shared modules, never ``kernel_env.inside``. ``records`` validates what
the sandbox sent, ``roofline`` prices it, ``modelled`` compares candidate with reference, ``scaling``
extrapolates small-size records when a full-size recording is missing or doubtful, ``gpus`` holds the
specs.
"""

from .gpus import DEFAULT_GPU, GPU, GPUS, gpu
from .modelled import Modelled, modelled
from .records import KernelLaunch, RecordError, TorchOp, parse_records
from .roofline import Breakdown, Row, price

__all__ = [
           "DEFAULT_GPU",
           "GPU",
           "GPUS",
           "Breakdown",
           "KernelLaunch",
           "Modelled",
           "RecordError",
           "Row",
           "TorchOp",
           "gpu",
           "modelled",
           "parse_records",
           "price",
]
