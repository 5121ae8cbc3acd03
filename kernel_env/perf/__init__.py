"""Modelled GPU time: price the work recorded in the sandbox (``kernel_env.inside.work``) on a named GPU.

Trusted side: imports only the shared modules, never ``kernel_env.inside``. ``records`` validates what
the sandbox sent, ``roofline`` prices it, ``modelled`` compares candidate with reference, ``scaling``
extrapolates small-size records when a full-size recording is missing or doubtful, ``gpus`` holds the
specs, ``sol`` turns a measured CUDA time and the work into fractions of the device's peaks.
"""

from .gpus import DEFAULT_GPU, GPU, GPUS, gpu, gpu_for_device
from .modelled import Modelled, modelled
from .records import KernelLaunch, RecordError, TorchOp, parse_records
from .roofline import Breakdown, Row, price
from .sol import OWN_KERNELS, REFERENCE_OPS, Work, sol_of_records, speed_of_light, work_of

__all__ = [
           "DEFAULT_GPU",
           "GPU",
           "GPUS",
           "OWN_KERNELS",
           "REFERENCE_OPS",
           "Breakdown",
           "KernelLaunch",
           "Modelled",
           "RecordError",
           "Row",
           "TorchOp",
           "Work",
           "gpu",
           "gpu_for_device",
           "modelled",
           "parse_records",
           "price",
           "sol_of_records",
           "speed_of_light",
           "work_of",
]
