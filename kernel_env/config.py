"""Evaluation settings: one frozen dataclass, hashed into cache keys."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, replace

from .protocol import BASELINES


@dataclass(frozen=True)
class EvalConfig:
    trials: int = 5  # correctness trials on fresh inputs (KernelBench's protocol)
    extra_trials: int = 2  # up to this many more, drawn at random, so call counting cannot know
    tolerance: str = "drkernel"  # the preset outputs are judged by (kernel_env.scoring.tolerance.PRESETS)
    atol: float | None = None  # None: the preset's figure for the dtype; a number overrides it ("custom")
    rtol: float | None = None
    dtype: str = "fp32"  # the precision inputs, parameters and the reference run at: "fp32", "bf16" or "fp16"
    seed: int | None = None  # None: secret seeds per evaluation; an int fixes them (debugging; marked in the result)
    input_variants: bool = True  # scaled / shifted / heavy-tailed inputs where the reference allows
    warmup: int | None = None  # timing warm-up calls; None = backend default
    iters: int | None = None  # the most timed calls (the stopping rule may end sooner); None = backend default
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
    timing_min_iters: int | None = None  # timed calls before timing may stop early; None = backend default
    timing_rel_se: float = 0.01  # stop once the standard error of the mean is below this share of the median
    timing_cap_s: float | None = 2.0  # or once the timed calls took this many seconds (per side); None = no cap
    baseline: str = "eager"  # what the reference is timed as: "eager" or "compile" (torch.compile(Model))

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
            if (value is not None or name == "timeout_s") and (
                    isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
                raise ValueError(f"EvalConfig.{name} must be a non-negative number, not {value!r}")
        from .scoring.tolerance import dtype_name

        object.__setattr__(self, "dtype", dtype_name(self.dtype))  # "bfloat16" is stored as "bf16"
        self.tol  # an unknown preset fails here
        from .perf.gpus import GPUS

        if self.gpu not in GPUS:
            raise ValueError(f"EvalConfig.gpu must be one of {sorted(GPUS)}, not {self.gpu!r}")
        for name in ("warmup", "iters"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < (0 if name == "warmup" else 1)):
                raise ValueError(f"EvalConfig.{name} must be None or a positive integer, not {value!r}")
        self._check_timing()

    def _check_timing(self) -> None:
        """The adaptive stopping rule's settings and the baseline: checked here, not in every worker."""
        low = self.timing_min_iters
        if low is not None and (type(low) is not int or low < 1):
            raise ValueError(f"EvalConfig.timing_min_iters must be None or a positive integer, not {low!r}")
        rel = self.timing_rel_se
        if type(rel) not in (int, float) or not math.isfinite(rel) or rel < 0:
            raise ValueError(f"EvalConfig.timing_rel_se must be a non-negative number, not {rel!r}")
        cap = self.timing_cap_s
        if cap is not None and (type(cap) not in (int, float) or not math.isfinite(cap) or cap <= 0):
            raise ValueError(f"EvalConfig.timing_cap_s must be None or a positive number of seconds, not {cap!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"EvalConfig.baseline must be one of {list(BASELINES)}, not {self.baseline!r}")

    @property
    def tol(self):
        """The tolerance outputs are judged by: the preset's figures for the dtype, or the ones set."""
        from .scoring.tolerance import Tolerance

        return Tolerance.resolve(self.tolerance, self.dtype, self.atol, self.rtol)

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
