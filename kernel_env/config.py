"""Evaluation settings: one frozen dataclass, hashed into cache keys."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class EvalConfig:
    trials: int = 5  # correctness trials on fresh inputs (KernelBench's protocol)
    extra_trials: int = 2  # up to this many more, drawn at random, so call counting cannot know
    atol: float = 1e-2
    rtol: float = 1e-2
    seed: int | None = None  # None: secret seeds per evaluation; an int fixes them (debugging; marked in the result)
    input_variants: bool = True  # scaled / shifted / heavy-tailed inputs where the reference allows
    warmup: int | None = None  # timing warm-up calls; None = backend default
    iters: int | None = None  # timed calls; None = backend default
    timeout_s: float = 60.0  # wall clock for one evaluation inside the sandbox
    cpu_time_s: int = 120
    memory_mb: int = 6144  # resident memory of the candidate process
    max_processes: int = 64
    max_output_mb: int = 16  # stdout/stderr and files written by the candidate
    max_result_mb: int = 16384  # what the reference run may send back; a candidate gets 2x the reference's
    strict: bool = False  # promote static findings to hack codes
    profile: bool = True  # measure coverage (own-kernel share of time)
    gpu: str = "H100"  # the GPU the modelled time is for (kernel_env.perf.GPUS)
    model_on_cuda: bool = False  # on CUDA, also model the candidate (a side interpreter run) to check the model

    def __post_init__(self):
        """Limits go to setrlimit and bit shifts in the worker: a wrong type there would fail every
        evaluation (and look like the candidate's fault), so it fails here instead."""
        if self.seed is not None and (type(self.seed) is not int or self.seed < 0):
            raise ValueError(f"EvalConfig.seed must be None or a non-negative integer, not {self.seed!r}")
        for name in ("trials", "extra_trials", "cpu_time_s", "memory_mb", "max_processes", "max_output_mb",
                     "max_result_mb"):
            value = getattr(self, name)
            if type(value) is not int or value < (0 if name == "extra_trials" else 1):
                raise ValueError(f"EvalConfig.{name} must be a positive integer, not {value!r}")
        for name in ("atol", "rtol", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"EvalConfig.{name} must be a non-negative number, not {value!r}")
        from .perf.gpus import GPUS

        if self.gpu not in GPUS:
            raise ValueError(f"EvalConfig.gpu must be one of {sorted(GPUS)}, not {self.gpu!r}")
        for name in ("warmup", "iters"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < (0 if name == "warmup" else 1)):
                raise ValueError(f"EvalConfig.{name} must be None or a positive integer, not {value!r}")

    def with_(self, **changes) -> "EvalConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def library_versions() -> dict:
    """What a cached reference depends on besides the task: results differ across these."""
    import torch
    import triton

    return {"python": sys.version.split()[0], "torch": torch.__version__, "triton": triton.__version__}
