"""The outcome of one evaluation, as a plain dataclass that round-trips through JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

#: Where an evaluation stopped, in pipeline order; "done" means every stage ran.
STAGES = ("parse", "compile", "correctness", "verification", "timing", "done")


@dataclass
class EvalResult:
    task_id: str
    backend: str = ""
    compiled: bool = False
    correct: bool = False
    hacks: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
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

    @property
    def clean(self) -> bool:
        """Correct and free of hack codes: the only results that earn a performance reward."""
        return self.correct and not self.hacks

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "EvalResult":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> "EvalResult":
        return cls.from_dict(json.loads(text))
