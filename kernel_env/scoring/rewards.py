"""Turn rewards: named presets over an ``EvalResult``, plus custom callables.

Every preset is gated the same way, so no shaping can pay for a hack: a result with hack codes gets
``hack_value``; a result that is not correct (unparseable, compile error, wrong output) gets
``failure_value``; only a correct, clean result earns the preset's formula, with C = 1:

=============  ==============================================================
``drkernel``   C + C * min(speedup, cap) + C * coverage   (Dr. Kernel; default)
``correctness``  C
``speedup``    C * min(speedup, cap)
``log_speedup``  C * log2(1 + min(speedup, cap))   (1 at parity, 2 at cap = 3)
=============  ==============================================================

A missing speedup or coverage (timing or profiling switched off) counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .result import EvalResult

RewardFn = Callable[[EvalResult], float]


def _speed(r: EvalResult, cap: float) -> float:
    return min(r.speedup or 0.0, cap)


PRESETS: dict[str, Callable[[EvalResult, float], float]] = {
    "drkernel": lambda r, cap: 1.0 + _speed(r, cap) + (r.coverage or 0.0),
    "correctness": lambda r, cap: 1.0,
    "speedup": lambda r, cap: _speed(r, cap),
    "log_speedup": lambda r, cap: math.log2(1.0 + _speed(r, cap)),
}


@dataclass(frozen=True)
class RewardConfig:
    """How one turn's ``EvalResult`` becomes a float.

    ``preset`` names a formula from ``PRESETS``; ``fn`` replaces it with a custom callable, which sees
    every result except hacks (those always get ``hack_value``), so it may give partial credit.
    """

    preset: str = "drkernel"
    speedup_cap: float = 3.0
    hack_value: float = 0.0
    failure_value: float = 0.0
    fn: RewardFn | None = None

    def __post_init__(self):
        if self.fn is None and self.preset not in PRESETS:
            raise ValueError(f"unknown reward preset {self.preset!r}; choose one of {', '.join(PRESETS)} or pass fn=")

    @classmethod
    def of(cls, spec: str | RewardConfig | RewardFn | None) -> RewardConfig:
        """Accept what envs take as ``reward=``: a preset name, a config, or a callable."""
        if spec is None:
            return cls()
        if isinstance(spec, RewardConfig):
            return spec
        if isinstance(spec, str):
            return cls(preset=spec)
        if callable(spec):
            return cls(preset="custom", fn=spec)
        raise TypeError(f"reward must be a preset name, a RewardConfig or a callable, not {type(spec).__name__}")

    def with_(self, **changes) -> RewardConfig:
        return replace(self, **changes)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "custom") if self.fn is not None else self.preset

    def gate(self, result: EvalResult) -> float | None:
        """What a result that earns no formula gets (``hack_value``, then ``failure_value``), or None
        for a correct, clean result: every reward in the package is gated here."""
        if result.hacks:
            return float(self.hack_value)
        if not result.correct:
            return float(self.failure_value)
        return None

    def __call__(self, result: EvalResult) -> float:
        if self.fn is not None:
            return float(self.hack_value) if result.hacks else float(self.fn(result))
        gated = self.gate(result)
        return gated if gated is not None else float(PRESETS[self.preset](result, self.speedup_cap))
