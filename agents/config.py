"""Training configuration: one dataclass, algorithms as named presets of the algorithm library.

An algorithm is a recipe over the registries in ``agents.algorithms``: which advantage estimator, at
which level (per turn, or per trajectory and broadcast to its turns), which policy loss with which
options, which filters, and how samples are drawn. ``ALGORITHMS`` names the recipes; a config file
(JSON or TOML) or ``--set algo_options.KEY=VALUE`` overrides any field of the chosen one.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass
class AlgoConfig:
    """One RL recipe. Field names match the library's vocabulary (docs/algorithms.md)."""

    advantage: str = "trloo"  # a key of ADVANTAGE_ESTIMATORS
    advantage_level: str = "turn"  # a key of ADVANTAGE_LEVELS: "turn" (per (task, turn)) or "trajectory"
    gamma: float = 1.0
    loss: str = "ppo_clip"  # a key of POLICY_LOSSES
    loss_options: dict[str, Any] = field(default_factory=dict)
    agg: str = "token-mean"
    # profiling-based rejection sampling (drop correct turns whose kernels cover little of the runtime)
    prs: bool = False
    prs_low: float = 0.3
    prs_width: float = 0.1
    # sampler/trainer mismatch: "none", "reject" (rejection mask + token veto), "tis", "reject+tis"
    mismatch: str = "none"
    mismatch_level: str = "turn"
    reject_lower: float = 0.999
    reject_upper: float = 1.001
    token_veto: float | None = 1e-4
    tis_cap: float = 2.0
    # how samples are drawn, a key of agents.collectors.COLLECTORS: "group" (G per task) or "reinforce_ada" (rounds)
    sampling: str = "group"
    ada_n: int = 4
    ada_m: int = 4
    ada_rounds: int = 3
    ada_threshold: float = 0.7
    ada_exit: str = "positive"

    def validate(self) -> None:
        from .algorithms import ADVANTAGE_ESTIMATORS, ADVANTAGE_LEVELS, AGG_MODES, POLICY_LOSSES
        from .collectors import COLLECTORS

        if self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"unknown advantage {self.advantage!r}; choose from {sorted(ADVANTAGE_ESTIMATORS)}")
        if self.loss not in POLICY_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {sorted(POLICY_LOSSES)}")
        if self.agg not in AGG_MODES:
            raise ValueError(f"unknown agg {self.agg!r}; choose from {AGG_MODES}")
        if self.advantage_level not in ADVANTAGE_LEVELS:
            raise ValueError(f"advantage_level must be one of {sorted(ADVANTAGE_LEVELS)}")
        if self.mismatch not in ("none", "reject", "tis", "reject+tis"):
            raise ValueError("mismatch must be 'none', 'reject', 'tis' or 'reject+tis'")
        if self.sampling not in COLLECTORS:
            raise ValueError(f"sampling must be one of {sorted(COLLECTORS)}")
        takes = inspect.signature(ADVANTAGE_ESTIMATORS[self.advantage]).parameters
        missing = [name for name in COLLECTORS[self.sampling].provides if name not in takes]
        if missing:
            raise ValueError(f"sampling {self.sampling!r} provides {', '.join(missing)}, which advantage "
                             f"{self.advantage!r} does not take (use global_mean)")


PPO_DRKERNEL = {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}

#: Named recipes. Why each choice: docs/algorithms.md.
ALGORITHMS: dict[str, dict[str, Any]] = {
    # Dr. Kernel: turn-level leave-one-out on returns-to-go, PPO-clip with dual clip, PRS, mismatch rejection.
    "trloo": dict(advantage="trloo", advantage_level="turn", loss="ppo_clip", loss_options=PPO_DRKERNEL,
                  agg="seq-mean-token-sum", prs=True, mismatch="reject"),
    # TOPR: R minus the group mean, tapered off-policy REINFORCE (no clip, no KL).
    "topr": dict(advantage="dr_grpo", advantage_level="trajectory", loss="topr",
                 loss_options={"ratio_level": "trajectory"}, agg="token-mean"),
    # Reinforce-Ada: adaptive rounds per task, balanced down-sampling, global-statistics baseline.
    "reinforce_ada": dict(sampling="reinforce_ada", advantage="global_mean", advantage_level="turn",
                          loss="ppo_clip", loss_options={"clip_low": 0.2, "clip_high": 0.28, "dual_clip": None},
                          agg="token-mean"),
    # RLOO: trajectory return, leave-one-out baseline, plain REINFORCE.
    "rloo": dict(advantage="rloo", advantage_level="trajectory", loss="reinforce", agg="token-mean"),
    # GRPO: mean/std-normalised group advantage, symmetric PPO clip, per-sequence token mean.
    "grpo": dict(advantage="grpo", advantage_level="trajectory", loss="ppo_clip",
                 loss_options={"clip_low": 0.2, "clip_high": 0.2, "dual_clip": None}, agg="seq-mean-token-mean"),
    # OPMD (Kimi k1.5): mean baseline, squared log-ratio regulariser towards pi_old.
    "opmd": dict(advantage="dr_grpo", advantage_level="trajectory", loss="opmd", loss_options={"tau": 0.1},
                 agg="token-mean"),
    # AsymRE: REINFORCE with the baseline a little below the mean (delta < 0).
    "asymre": dict(advantage="dr_grpo", advantage_level="trajectory", loss="asymre", loss_options={"delta": -0.1},
                   agg="token-mean"),
}


def algorithm(name: str, **overrides) -> AlgoConfig:
    """The named recipe with ``overrides`` applied, validated."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    cfg = AlgoConfig(**{**ALGORITHMS[name], **overrides})
    cfg.validate()
    return cfg


@dataclass
class TrainConfig:
    """Everything a training run needs; ``to_dict`` / ``from_dict`` round-trip through JSON."""

    algo: str = "trloo"
    algo_options: dict[str, Any] = field(default_factory=dict)  # overrides of the recipe's AlgoConfig
    env: str = "agents/TargetString-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model: str = "tiny"  # "tiny", "tiny:SEED", "tiny-bpe", a local path or a hub id
    model_options: dict[str, Any] = field(default_factory=dict)  # tiny: its shape; else from_pretrained kwargs
    seed: int = 0
    steps: int = 20
    tasks_per_step: int = 4
    group_size: int = 4
    max_turns: int = 2
    # sampling
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_context: int | None = None  # prompt + response tokens; default: the model's limit
    system_prompt: str | None = None
    generate_batch_size: int | None = None  # prompts per generate call (None: all at once)
    sampler: str = "hf"  # "hf": the policy's own generate; "vllm": a vLLM engine (GPU, pip install vllm)
    vllm_options: dict[str, Any] = field(default_factory=dict)  # VLLMSampler fields, e.g. gpu_memory_utilization
    # optimisation
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    epochs: int = 1  # passes over each collected batch
    minibatches: int = 1  # optimizer steps per pass (PPO-style reuse of a batch)
    micro_batch_size: int = 8  # rows per forward/backward; gradients accumulate over a minibatch
    max_grad_norm: float = 1.0
    # model
    device: str = "cpu"
    dtype: str | None = None  # e.g. "bfloat16" on GPUs
    lora: dict[str, Any] | None = None  # LoraSettings fields, e.g. {"r": 16}; needs peft
    gradient_checkpointing: bool = False
    # bookkeeping
    out_dir: str = "runs/train"
    checkpoint_every: int = 0  # steps; 0: only at the end
    keep_checkpoints: int = 2
    resume: bool = False
    plot: bool = True
    progress: bool = True

    def algorithm(self) -> AlgoConfig:
        return algorithm(self.algo, **self.algo_options)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "adam_betas" in data:
            data["adam_betas"] = tuple(data["adam_betas"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A JSON or TOML file holding any subset of the fields."""
        path = Path(path)
        if path.suffix == ".toml":
            import tomllib

            return cls.from_dict(tomllib.loads(path.read_text()))
        return cls.from_dict(json.loads(path.read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def set(self, assignment: str) -> TrainConfig:
        """Apply ``KEY=VALUE`` (``algo_options.KEY`` / ``env_kwargs.KEY`` for nested); VALUE parsed as JSON."""
        key, _, raw = assignment.partition("=")
        if not _:
            raise ValueError(f"expected KEY=VALUE, got {assignment!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        data = self.to_dict()
        if "." in key:
            outer, inner = key.split(".", 1)
            if not isinstance(data.get(outer), dict) and data.get(outer) is not None:
                raise ValueError(f"{outer} is not a mapping")
            data[outer] = {**(data.get(outer) or {}), inner: value}
        else:
            data[key] = value
        return TrainConfig.from_dict(data)
