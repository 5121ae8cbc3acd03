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

Which speedup: ``RewardConfig.speed`` picks it for every preset (``speed_source``). ``"auto"`` (the
default) pays the modelled GPU speedup (``result.modelled``, a roofline model of the work the kernels
did) on the interpreter backend, whose measured figures are CPU times, and the measured speedup on
CUDA; ``"modelled"`` always pays the model where there is one; ``"measured"`` always the timing.
Coverage is whatever ``result.coverage`` holds. A missing speedup or coverage counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .result import EvalResult

RewardFn = Callable[[EvalResult], float]


#: The values of ``RewardConfig.speed``.
SPEEDS = ("auto", "modelled", "measured")


def _check_speed(speed: str) -> None:
    """A mistyped choice would silently pay the wrong figure, so it fails instead."""
    if speed not in SPEEDS:
        raise ValueError(f"unknown speed {speed!r}; choose one of {', '.join(SPEEDS)}")


def speed_source(result: EvalResult, speed: str = "auto") -> str:
    """Which speedup counts for ``result``, "modelled" or "measured". The one place the choice is made
    (rewards and ``kernel-env bench`` both ask here), so the two can never disagree."""
    _check_speed(speed)
    if result.modelled is None or speed == "measured":
        return "measured"
    return "modelled" if speed == "modelled" or result.backend == "interpreter" else "measured"


def chosen_speedup(result: EvalResult, speed: str = "auto") -> float | None:
    """The speedup ``speed_source`` picks, or None where that figure is missing."""
    if speed_source(result, speed) == "modelled":
        return result.modelled.get("speedup")
    return result.speedup


#: Each preset gets the result and its speed term, min(chosen speedup or 0, cap).
PRESETS: dict[str, Callable[[EvalResult, float], float]] = {
    "drkernel": lambda r, speed: 1.0 + speed + (r.coverage or 0.0),
    "correctness": lambda r, speed: 1.0,
    "speedup": lambda r, speed: speed,
    "log_speedup": lambda r, speed: math.log2(1.0 + speed),
}


@dataclass(frozen=True)
class RewardConfig:
    """How one turn's ``EvalResult`` becomes a float.

    ``preset`` names a formula from ``PRESETS``; ``fn`` replaces it with a custom callable, which sees
    every result except hacks (those always get ``hack_value``), so it may give partial credit (it can
    call ``chosen_speedup``). ``speed`` picks the speedup every preset pays (see the module docstring).
    """

    preset: str = "drkernel"
    speedup_cap: float = 3.0
    hack_value: float = 0.0
    failure_value: float = 0.0
    fn: RewardFn | None = None
    speed: str = "auto"

    def __post_init__(self):
        if self.fn is None and self.preset not in PRESETS:
            raise ValueError(f"unknown reward preset {self.preset!r}; choose one of {', '.join(PRESETS)} or pass fn=")
        _check_speed(self.speed)

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

    def speed_term(self, result: EvalResult) -> float:
        """The capped speedup the presets pay: the one route from a result to its speed term."""
        return min(chosen_speedup(result, self.speed) or 0.0, self.speedup_cap)

    def __call__(self, result: EvalResult) -> float:
        if self.fn is not None:
            return float(self.hack_value) if result.hacks else float(self.fn(result))
        gated = self.gate(result)
        return gated if gated is not None else float(PRESETS[self.preset](result, self.speed_term(result)))
