"""kernel-env: Gymnasium environments that score LLM-written Triton kernels, with hack detection."""

from .config import EvalConfig
from .env import KernelEnv
from .evaluator import Evaluator, evaluate
from .hacks import HACKS
from .registration import ENV_IDS, register_envs
from .result import EvalResult
from .rewards import RewardConfig
from .spaces import TextSpace
from .vector import KernelVectorEnv

register_envs()

__all__ = [
    "ENV_IDS", "HACKS", "EvalConfig", "EvalResult", "Evaluator", "KernelEnv", "KernelVectorEnv", "RewardConfig",
    "TextSpace", "evaluate", "register_envs",
]
