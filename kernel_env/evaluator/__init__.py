"""The trusted side: pools of sandboxed workers, the judge, the plan of calls, the submission parser.

It starts ``kernel_env.inside`` as processes and talks to them through ``kernel_env.protocol`` only;
it never imports ``kernel_env.inside`` (a test enforces it).
"""

from .base import BACKENDS, BackendUnavailable, BaseEvaluator, default_size, require_local, resolve_backend
from .cache import ResultCache, result_key
from .pool import Evaluator
from .shared import POOLS, default_evaluator, evaluate

__all__ = [
    "BACKENDS", "POOLS", "BackendUnavailable", "BaseEvaluator", "Evaluator", "ResultCache", "default_evaluator",
    "default_size", "evaluate", "require_local", "resolve_backend", "result_key",
]
