"""A deliberately naive harness, the kind the catalogue's hacks were written against: one process,
reference first, one candidate call on the same inputs, one ``torch.allclose``.

Every adversarial submission must pass it, to show the hack is real before the evaluator catches it.
Whatever the submission patches in this (the test) process is put back afterwards.
"""

from __future__ import annotations

import contextlib
import tempfile
import types
from pathlib import Path

import torch

import kernel_env.inside.runner  # noqa: F401 - so the harness modules exist and are restored too
from kernel_env.evaluator.submission import extract_code
from kernel_env.inside.guards import Integrity


@contextlib.contextmanager
def restored():
    """Put back timers, comparisons and harness functions a submission replaced."""
    integrity = Integrity().capture()
    try:
        yield
    finally:
        integrity.verify()


def _module(name: str, code: str, filename: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(code, filename, "exec"), module.__dict__)  # noqa: S102 - in-process on purpose
    return module


def naive_harness(task, response: str, size: str = "small", seed: int = 0, atol: float = 1e-2,
                  rtol: float = 1e-2) -> bool:
    """True when the submission's single output matches the reference's by ``torch.allclose``."""
    with restored(), tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "naive_candidate.py")  # Triton reads kernel source from a real file
        code = extract_code(response)
        Path(path).write_text(code)
        reference = _module("naive_reference", task.program(size), "<reference>")
        candidate = _module("naive_candidate", code, path)
        torch.manual_seed(seed)
        inputs = reference.get_inputs()
        torch.manual_seed(seed)
        model = reference.Model(*reference.get_init_inputs())
        torch.manual_seed(seed)
        model_new = candidate.ModelNew(*reference.get_init_inputs())
        with torch.no_grad():
            want = model(*inputs)
            got = model_new(*inputs)
        want = list(want) if isinstance(want, (tuple, list)) else [want]
        got = list(got) if isinstance(got, (tuple, list)) else [got]
        return len(got) == len(want) and all(bool(torch.allclose(g, w, atol=atol, rtol=rtol)) for g, w in zip(got, want))


def naive_gradients(task, response: str, size: str = "small", seed: int = 0, atol: float = 1e-2,
                    rtol: float = 1e-2) -> bool:
    """The naive harness of a backward task: one call, then ``backward()`` with ones, and the output
    and the input's and parameters' ``.grad`` compared by ``torch.allclose``; who computed them is not asked."""
    with restored(), tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "naive_candidate.py")
        code = extract_code(response)
        Path(path).write_text(code)
        reference = _module("naive_reference", task.program(size), "<reference>")
        candidate = _module("naive_candidate", code, path)
        results = []
        for module, cls in ((reference, reference.Model), (candidate, candidate.ModelNew)):
            torch.manual_seed(seed)
            inputs = [x.requires_grad_() for x in reference.get_inputs()]
            torch.manual_seed(seed)
            model = cls(*reference.get_init_inputs())
            out = model(*inputs)
            out.backward(torch.ones_like(out))
            results.append([out.detach(), *[x.grad for x in inputs], *[p.grad for p in model.parameters()]])
        want, got = results
        return len(got) == len(want) and all(g is not None and bool(torch.allclose(g, w, atol=atol, rtol=rtol))
                                             for g, w in zip(got, want))
