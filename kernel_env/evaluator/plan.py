"""Which calls an evaluation makes: trial seeds, input variants, the in-place reuse call, a second shape,
and the fresh inputs of every timed call.

Every seed is derived from a *seed set* the candidate cannot know: a secret drawn by the trusted
side (a bounded pool per task, so references stay cached), or ``EvalConfig.seed`` when a user fixes
it for debugging. The reference side runs the longest plan once per seed set (cached); each
candidate evaluation runs a prefix of the base trials plus a random number of extra trials, so call
counting cannot know which call is the last one checked (hack 7).
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass

from ..config import EvalConfig
from ..protocol import VARIANTS, Timing, Trial, timing_counts, timing_min_iters

#: Seed sets kept per task and configuration: each costs one reference run (then cached); a
#: candidate is evaluated on one of them, picked at random.
SEED_SETS = 4


@dataclass(frozen=True)
class SeedSet:
    """The secrets one group of evaluations shares: where every seed comes from, and the sample
    positions of timed-output fingerprints."""

    base: int
    fingerprint_key: int

    def seed(self, *path) -> int:
        return _hash(self.base, *path) & ((1 << 63) - 1)

    @classmethod
    def derive(cls, secret: int, *path) -> SeedSet:
        """Seed set number ``path`` of an evaluator's secret (shared by the actors of one Ray
        evaluator, so they share references too)."""
        return cls(_hash(secret, *path, "base") & ((1 << 63) - 1), _hash(secret, *path, "fingerprint") & ((1 << 31) - 1))

    @classmethod
    def of(cls, config: EvalConfig) -> SeedSet | None:
        """The fixed seed set of a config that names a seed; None means secret seed sets."""
        if config.seed is None:
            return None
        return cls(config.seed, _hash(config.seed, "fingerprint") & ((1 << 31) - 1))


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def new_secret() -> int:
    return secrets.randbits(128)


def reference_plan(config: EvalConfig, has_alt: bool, seeds: SeedSet) -> list[Trial]:
    variants = VARIANTS if config.input_variants else ("normal",)
    base = [
        Trial(seeds.seed("trial", i), variants[i - 1] if i >= 2 and i - 1 < len(variants) else "normal")
        for i in range(config.trials)
    ]
    extra = [Trial(seeds.seed("extra", i), role="extra") for i in range(config.extra_trials)]
    trials = base + extra + [Trial(seeds.seed("reuse"), reuse=True, role="reuse")]
    if has_alt:
        trials.append(Trial(seeds.seed("alt"), program="alt", role="alt"))
    return trials


def timing_plan(config: EvalConfig, backend: str, seeds: SeedSet) -> Timing:
    """Warm-up and timed calls, each on inputs of its own seed: a seed for every call up to the most
    the stopping rule allows, so a run that stops early still never reuses one; the run decides when
    to stop, by the rule, on what its harness measured."""
    warmup, iters = timing_counts(config, backend)
    return Timing(warmup, iters, tuple(seeds.seed("timed", i) for i in range(warmup + iters)),
                  min_iters=timing_min_iters(config, backend), rel_se=config.timing_rel_se,
                  cap_s=config.timing_cap_s, baseline=config.baseline)


def candidate_indices(plan: list[Trial], usable: list[bool], rng: random.Random) -> list[int]:
    """Indices into the reference plan: all base trials, a random number of extras, then the rest.
    Trials whose reference output is unusable (non-finite on a variant) are skipped."""
    extras = [i for i, t in enumerate(plan) if t.role == "extra"]
    keep_extra = set(extras[: rng.randint(0, len(extras))])
    return [i for i, t in enumerate(plan) if usable[i] and (t.role != "extra" or i in keep_extra)]
