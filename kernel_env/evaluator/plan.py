"""Which calls an evaluation makes: trial seeds, input variants, the in-place reuse call, a second shape.

The reference side runs the longest plan once (cached); each candidate evaluation runs a prefix of
the base trials plus a random number of extra trials, so call counting cannot know which call is
the last one checked (hack 7).
"""

from __future__ import annotations

import random

from ..config import EvalConfig
from ..protocol import VARIANTS, Trial


def reference_plan(config: EvalConfig, has_alt: bool) -> list[Trial]:
    variants = VARIANTS if config.input_variants else ("normal",)
    base = [
        Trial(config.seed + i, variants[i - 1] if i >= 2 and i - 1 < len(variants) else "normal")
        for i in range(config.trials)
    ]
    n = len(base)
    extra = [Trial(config.seed + n + i, role="extra") for i in range(config.extra_trials)]
    trials = base + extra + [Trial(config.seed + 1000, reuse=True, role="reuse")]
    if has_alt:
        trials.append(Trial(config.seed + 2000, program="alt", role="alt"))
    return trials


def candidate_indices(plan: list[Trial], usable: list[bool], rng: random.Random) -> list[int]:
    """Indices into the reference plan: all base trials, a random number of extras, then the rest.
    Trials whose reference output is unusable (non-finite on a variant) are skipped."""
    extras = [i for i, t in enumerate(plan) if t.role == "extra"]
    keep_extra = set(extras[: rng.randint(0, len(extras))])
    return [i for i, t in enumerate(plan) if usable[i] and (t.role != "extra" or i in keep_extra)]


def timing_sets(plan: list[Trial]) -> list[int]:
    """Two normal-distribution trials whose inputs the timed calls rotate through."""
    normal = [i for i, t in enumerate(plan) if t.role == "base" and t.variant == "normal"]
    return normal[:2]
