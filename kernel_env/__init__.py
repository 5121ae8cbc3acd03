"""kernel-env: Gymnasium environments that score LLM-written Triton kernels, with hack detection.

``import kernel_env`` registers the ``kernel_env/`` ids and nothing more: the names below load their
module (and torch) on first use, so ``gym.register_envs(kernel_env)`` costs milliseconds.

Layout (the trust boundary is the folder structure):

- ``protocol``, ``wire``, ``config``: what both sides of the sandbox share.
- ``inside/``: what runs in the sandbox (worker, runs, watchers); never imports the trusted side.
- ``evaluator/``: the trusted side (pools, Ray, judge, plan, submission parsing, sandbox control).
- ``scoring/``: the result record, hack codes, feedback, rewards.
- ``envs/``: the text env, its vector env, the tuning env, spaces, prompts, registration.
- ``integrations/``: adapters for other libraries.
"""

from __future__ import annotations

import importlib

from . import _moved
from .envs.registration import ENV_IDS, register_envs

_LAZY = {
    "EvalConfig": "kernel_env.config",
    "KernelEnv": "kernel_env.envs.text_env",
    "KernelVectorEnv": "kernel_env.envs.vector_env",
    "TextSpace": "kernel_env.envs.spaces",
    "Evaluator": "kernel_env.evaluator",
    "evaluate": "kernel_env.evaluator",
    "EvalResult": "kernel_env.scoring.result",
    "RewardConfig": "kernel_env.scoring.rewards",
    "HACKS": "kernel_env.scoring.hacks",
}

__all__ = ["ENV_IDS", *_LAZY, "register_envs"]

register_envs()
_moved.install()


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kernel_env' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
