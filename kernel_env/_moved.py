"""Import paths of the first release, kept for one release: each old name is the new module itself.

``import kernel_env.sb3`` (say) warns once and hands back ``kernel_env.integrations.sb3``, the same
module object, so patches and ``isinstance`` checks keep working. Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "kernel_env.env": "kernel_env.envs.text_env",
    "kernel_env.vector": "kernel_env.envs.vector_env",
    "kernel_env.spaces": "kernel_env.envs.spaces",
    "kernel_env.registration": "kernel_env.envs.registration",
    "kernel_env.sb3": "kernel_env.integrations.sb3",
    "kernel_env.ray_evaluator": "kernel_env.evaluator.ray_pool",
    "kernel_env.result": "kernel_env.scoring.result",
    "kernel_env.rewards": "kernel_env.scoring.rewards",
    "kernel_env.hacks": "kernel_env.scoring.hacks",
    "kernel_env.feedback": "kernel_env.scoring.feedback",
    "kernel_env.submission": "kernel_env.evaluator.submission",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in kernel-env 0.3", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """The module is already executed: it is the new one."""


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
