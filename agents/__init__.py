"""agents: LLM policies, multi-turn rollouts, RL training and test-time scaling on text envs.

Importing ``agents`` is cheap: the names below load their module (and ``transformers``) on first use.

- ``Policy`` (``agents.policies``): a causal LM with its chat template; ``generate`` (sampler view)
  and ``logprobs`` (trainer view); ``Policy.load("tiny")`` for an offline toy model.
- ``collect`` / ``EnvPool`` (``agents.rollout``): G trajectories per task, up to T turns.
- ``TrainConfig`` / ``ALGORITHMS`` (``agents.config``) and ``train`` (``agents.trainer``).
- ``TargetStringEnv`` (``agents.toy_env``): a cheap multi-turn text env for tests and demos.
- ``agents.algorithms``: the pure-tensor algorithm library the trainer composes.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Policy": "agents.policies",
    "SamplingParams": "agents.policies",
    "Generation": "agents.policies",
    "LoraSettings": "agents.adapters",
    "ReMixSettings": "agents.adapters",
    "VLLMSampler": "agents.policies",
    "EnvPool": "agents.rollout",
    "collect": "agents.rollout",
    "Rollout": "agents.rollout",
    "TurnSample": "agents.rollout",
    "TrainConfig": "agents.config",
    "AlgoConfig": "agents.config",
    "ALGORITHMS": "agents.config",
    "train": "agents.trainer",
    "TrainResult": "agents.trainer",
    "TargetStringEnv": "agents.toy_env",
}

__all__ = [
    "ALGORITHMS",
    "AlgoConfig",
    "EnvPool",
    "Generation",
    "LoraSettings",
    "Policy",
    "ReMixSettings",
    "Rollout",
    "SamplingParams",
    "TargetStringEnv",
    "TrainConfig",
    "TrainResult",
    "TurnSample",
    "VLLMSampler",
    "collect",
    "train",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
