"""The outcome of one evaluation, as a plain dataclass that round-trips through JSON.

``to_dict()`` carries ``schema_version``; the README lists the fields each version added. Reading an
older record fills the fields it lacks with their defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

#: Where an evaluation stopped, in pipeline order; "done" means every stage ran.
STAGES = ("parse", "compile", "correctness", "verification", "timing", "done")
#: 1: the first release. 2: ``schema_version``, ``hack_details``, ``harness_error``.
#: 3: ``inputs``, ``isolation``, ``modelled``. 4: ``sol``. 5: ``dtype``, ``tolerance``.
SCHEMA_VERSION = 5
NOT_YOUR_FAULT = "The evaluator could not finish this evaluation; this is not your fault."


@dataclass
class EvalResult:
    task_id: str
    backend: str = ""
    compiled: bool = False
    correct: bool = False
    hacks: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # static evidence read from the code
    speedup: float | None = None
    runtime_ms: float | None = None
    ref_runtime_ms: float | None = None
    coverage: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    error: str | None = None
    stage: str = "parse"
    feedback: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent in each stage
    size: str = ""
    device: str = ""
    hack_details: dict[str, str] = field(default_factory=dict)  # hack code -> what was seen
    harness_error: bool = False  # the evaluator failed, not the submission: no verdict on it
    inputs: str = ""  # "secret" (seeds the candidate cannot know) or "fixed" (EvalConfig.seed, for debugging)
    isolation: str = ""  # how the candidate ran: "bwrap" (minimal file-system view, no network) or "none"
    #: modelled GPU time (kernel_env.perf): gpu, runtime_us, ref_runtime_us, speedup, bound, flags, rows,
    #: ref_rows (each row: name, kind, flops, bytes, us, bound, count, detail); None where no model ran
    modelled: dict | None = None
    #: speed of light on CUDA (kernel_env.perf.sol): the work over the measured time as fractions of the
    #: device's peaks (gpu, runtime_us, bytes, flops, achieved_gbps, achieved_tflops, bandwidth_fraction,
    #: compute_fraction, fraction, bound, work, flags, ...); None off CUDA or for a part not in the table
    sol: dict | None = None
    dtype: str = ""  # the precision the task ran at: "fp32", "bf16" or "fp16"
    #: what the outputs were judged by (kernel_env.scoring.tolerance): preset, atol, rtol, dtype, scale_aware
    tolerance: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def harness_failure(cls, task_id: str, error: str, **context) -> EvalResult:
        """The one constructor for results the submission is not to blame for (a broken reference, a
        lost or stuck actor): they earn the failure reward but say so, and are never cached."""
        return cls(task_id=task_id, error=error, stage="compile", feedback=NOT_YOUR_FAULT, harness_error=True,
                   **context)

    @property
    def clean(self) -> bool:
        """Correct and free of hack codes: the only results that earn a performance reward."""
        return self.correct and not self.hacks

    def copy(self) -> EvalResult:
        return EvalResult.from_dict(self.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        known = {f.name for f in fields(cls)} - {"schema_version"}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> EvalResult:
        return cls.from_dict(json.loads(text))
