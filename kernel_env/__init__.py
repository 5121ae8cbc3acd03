"""kernel-env: Gymnasium environments that score LLM-written Triton kernels, with hack detection."""

from .config import EvalConfig
from .evaluator import Evaluator, evaluate
from .hacks import HACKS
from .result import EvalResult

__all__ = ["HACKS", "EvalConfig", "EvalResult", "Evaluator", "evaluate"]
