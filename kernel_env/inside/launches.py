"""Record, time and ghost the submission's own Triton kernels (runs inside the sandbox).

"Own" means the kernel's Python function was defined in the submission's file, so kernels that
torch.compile or a library launch do not count. The patch sits on the kernel *classes*, not on the
submission's objects, so aliases and autotuner wrappers are seen too. Compiled launches are also
counted through Triton's launch-enter hook, which catches launches that bypass ``run``. A launch
that raises does not count, so ``try: kernel() except: torch_fallback()`` shows no launch.
"""

from __future__ import annotations

import math
from time import perf_counter  # bound before the candidate can replace time.perf_counter

import torch


def _own_function(kernel, own_file: str) -> bool:
    fn = getattr(kernel, "fn", None)
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename == own_file


#: Ghost-replay fills: NaN first, then irregular finite values, so an output that launders the
#: scratch buffer (``0 * scratch``, ``nan_to_num``) still shows that the kernel did not matter; last
#: nothing at all, so a kernel that passes in place over a result torch already computed is seen.
GHOST_FILLS = ("nan", "random", "none")


def _poison(value, protected: set[int], fill: str) -> None:
    """Fill a tensor the ghost kernel would have written, so stale memory cannot look like output."""
    if fill == "none" or not isinstance(value, torch.Tensor) or value.untyped_storage().data_ptr() in protected:
        return
    with torch.no_grad():
        if fill == "nan":
            if value.is_floating_point() or value.is_complex():
                value.fill_(math.nan)
            elif value.dtype != torch.bool:
                value.fill_(-1)
            return
        gen = torch.Generator().manual_seed(value.numel() + 7919)
        if value.is_floating_point() or value.is_complex():
            noise = torch.randn(value.shape, generator=gen, dtype=torch.float32) * 97.0 + 13.0
        else:
            noise = torch.randint(0, 2 if value.dtype == torch.bool else 100, value.shape, generator=gen)
        value.copy_(noise.to(value.dtype))


class LaunchRecorder:
    """Counts own launches and the host time spent in them; in ghost mode, skips them instead."""

    def __init__(self, own_file: str, own_names: set[str], cuda: bool = False):
        self.own_file = own_file
        self.own_names = own_names
        self.cuda = cuda
        self.count = 0
        self.hook_count = 0
        self.side_launches = 0  # own launches issued on a stream other than the harness's (hack 12)
        self.seconds = 0.0
        self.ghost: str | None = None  # a GHOST_FILLS entry while ghost replay runs
        self.protected: set[int] = set()  # storages that ghost mode must not poison (inputs, weights)
        self.home_stream = None
        self.returned: dict[int, object] = {}  # kernel id -> what its last real launch returned
        self.launched_names: dict[str, int] = {}  # compiled kernel name -> launches the hook saw
        self.compiler = None  # a gpu_compile.GpuCompiler while the correctness calls run (interpreter)

    def reset(self) -> None:
        self.count = self.hook_count = self.side_launches = 0
        self.seconds = 0.0
        self.launched_names = {}

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
        self.classes = classes
        if self.cuda:
            self.home_stream = torch.cuda.current_stream().cuda_stream
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
            if recorder.ghost:  # returns what a real launch returned: a replay looks like a call
                recorder.count += 1
                for value in (*args, *kwargs.values()):
                    _poison(value, recorder.protected, recorder.ghost)
                return recorder.returned.get(id(kernel))
            if recorder.cuda and torch.cuda.current_stream().cuda_stream != recorder.home_stream:
                recorder.side_launches += 1
            start, hooked = perf_counter(), recorder.hook_count
            try:
                result = original(kernel, *args, **kwargs)
            except BaseException:
                recorder.hook_count = hooked  # only a launch that did not raise counts (hack 3)
                raise
            finally:
                recorder.seconds += perf_counter() - start
            recorder.count += 1
            recorder.returned[id(kernel)] = result
            if recorder.compiler is not None:  # launches that ran: a failed one is no GPU code either
                recorder.compiler.observe(kernel, args, kwargs)
            return result

        run.__qualname__ = f"{cls.__qualname__}.run"
        cls.run = run

    def _on_launch_enter(self, metadata) -> None:
        try:
            name = metadata.get()["name"]
        except Exception:  # the hook must never break a launch
            return
        if name in self.own_names:
            self.hook_count += 1
            self.launched_names[name] = self.launched_names.get(name, 0) + 1

    @property
    def launches(self) -> int:
        return max(self.count, self.hook_count)
