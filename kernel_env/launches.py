"""Record, time and ghost the submission's own Triton kernels (runs inside the sandbox).

"Own" means the kernel's Python function was defined in the submission's file, so kernels that
torch.compile or a library launch do not count. The patch sits on the kernel *classes*, not on the
submission's objects, so aliases and autotuner wrappers are seen too. Compiled launches are also
counted through Triton's launch-enter hook, which catches launches that bypass ``run``.
"""

from __future__ import annotations

import math
import time

import torch


def _own_function(kernel, own_file: str) -> bool:
    fn = getattr(kernel, "fn", None)
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename == own_file


def _poison(value, protected: set[int]) -> None:
    """Fill a tensor the ghost kernel would have written, so stale memory cannot look like output."""
    if not isinstance(value, torch.Tensor) or value.untyped_storage().data_ptr() in protected:
        return
    with torch.no_grad():
        if value.is_floating_point() or value.is_complex():
            value.fill_(math.nan)
        elif value.dtype != torch.bool:
            value.fill_(-1)


class LaunchRecorder:
    """Counts own launches and the host time spent in them; in ghost mode, skips them instead."""

    def __init__(self, own_file: str, own_names: set[str]):
        self.own_file = own_file
        self.own_names = own_names
        self.count = 0
        self.hook_count = 0
        self.seconds = 0.0
        self.ghost = False
        self.protected: set[int] = set()  # storages that ghost mode must not poison (inputs, weights)

    def reset(self) -> None:
        self.count = self.hook_count = 0
        self.seconds = 0.0

    def install(self) -> None:
        from triton.runtime.jit import JITFunction

        classes = [JITFunction]
        try:
            from triton.runtime.interpreter import InterpretedFunction

            classes.append(InterpretedFunction)
        except ImportError:  # pragma: no cover - older Triton
            pass
        for cls in classes:
            self._wrap(cls)
        try:
            from triton import knobs

            knobs.runtime.launch_enter_hook.add(self._on_launch_enter)
        except (ImportError, AttributeError):  # pragma: no cover - Triton < 3.5
            pass

    def _wrap(self, cls) -> None:
        original = cls.run
        recorder = self

        def run(kernel, *args, **kwargs):
            if kwargs.get("warmup") or not _own_function(kernel, recorder.own_file):
                return original(kernel, *args, **kwargs)
            recorder.count += 1
            if recorder.ghost:
                for value in (*args, *kwargs.values()):
                    _poison(value, recorder.protected)
                return None
            start = time.perf_counter()
            try:
                return original(kernel, *args, **kwargs)
            finally:
                recorder.seconds += time.perf_counter() - start

        run.__qualname__ = f"{cls.__qualname__}.run"
        cls.run = run

    def _on_launch_enter(self, metadata) -> None:
        try:
            name = metadata.get()["name"]
        except Exception:  # the hook must never break a launch
            return
        if name in self.own_names:
            self.hook_count += 1

    @property
    def launches(self) -> int:
        return max(self.count, self.hook_count)
