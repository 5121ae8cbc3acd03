"""Which weights a run trains: every weight (``full``), a LoRA adapter (``lora``, through peft), or a
ReMix mixture of LoRAs (``remix``, ``agents.remix``). The settings live here, without torch, so a
config is checked before anything heavy loads; ``Policy.enable_adapter`` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .config import setting


@dataclass
class LoraSettings:
    r: int = setting(16, "rank of each adapter")
    alpha: int = setting(32, "the update is scaled by alpha / r")
    dropout: float = setting(0.0, "dropout on the adapter's input (RL turns it off)")
    target_modules: str | list[str] = setting("all-linear", "all-linear (not the output head) or layer names")


@dataclass
class ReMixSettings:
    """ReMix (Qiu et al., 2026, "Reinforcement routing for mixtures of LoRAs"): ``k`` LoRAs of rank
    ``r`` per adapted linear layer, a linear router per layer, and ``m`` of the ``k`` active for each
    token, each weighted 1/m (fixed, not learnt: no LoRA can dominate). The router trains by the RLOO
    estimator with the supervision loss as its reward, over ``samples`` routings drawn per batch."""

    k: int = setting(4, "LoRAs per adapted layer")
    m: int = setting(2, "LoRAs active per token, each weighted 1/m")
    r: int = setting(8, "rank of each LoRA")
    alpha: int = setting(16, "each LoRA's update is scaled by alpha / r")
    samples: int = setting(2, "routings drawn per SFT batch for the leave-one-out baseline (at least 2)")
    target_modules: str | list[str] = setting("all-linear", "all-linear (not the output head) or layer names")

    def __post_init__(self):
        if not 1 <= self.m <= self.k:
            raise ValueError(f"remix needs 1 <= m <= k, got m={self.m}, k={self.k}")
        if self.r < 1 or self.samples < 2:
            raise ValueError(f"remix needs r >= 1 and samples >= 2, got r={self.r}, samples={self.samples}")


#: adapter name -> its settings class (None: every weight trains).
ADAPTERS: dict[str, type | None] = {"full": None, "lora": LoraSettings, "remix": ReMixSettings}


def adapter_settings(adapter: str, options: dict[str, Any]):
    """The settings object of ``adapter`` from its option mapping; ValueError names a wrong key."""
    if adapter not in ADAPTERS:
        raise ValueError(f"unknown adapter {adapter!r}; choose from {', '.join(ADAPTERS)}")
    cls = ADAPTERS[adapter]
    if cls is None:
        if options:
            raise ValueError(f"adapter 'full' takes no options, got {sorted(options)}")
        return None
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {adapter} setting {unknown[0]!r}; {adapter} takes {', '.join(sorted(known))}")
    return cls(**options)
