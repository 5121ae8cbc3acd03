"""One call of a model as the harness makes it, for the two kinds of task.

A forward task's call is ``model(*inputs)`` under ``no_grad``. A backward task's call (the task file
says ``BACKWARD = True``) is a forward in grad mode on inputs that are fresh autograd leaves, then
``torch.autograd.grad`` of every floating output, against upstream gradients drawn from the call's
seed, with respect to every floating input and to the reference's parameters (by name). The call
returns the outputs followed by those gradients, so every check of outputs (trials, fingerprints of
timed calls, ghost replay, staleness) covers the gradients too.
"""

from __future__ import annotations

import torch

#: Upstream gradients come from the call's seed mixed with this, so they differ from its inputs.
GRAD_SEED = 0x6EAD5EED
#: Autograd nodes that only move or relabel data: a submission's own Function may sit behind them.
SHAPE_NODES = frozenset({
    "AccumulateGrad", "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "TBackward0",
    "TransposeBackward0", "TransposeBackward1", "PermuteBackward0", "ExpandBackward0", "SqueezeBackward0",
    "SqueezeBackward1", "SqueezeBackward2", "UnsqueezeBackward0", "SliceBackward0", "SelectBackward0",
    "AsStridedBackward0", "CloneBackward0", "ToCopyBackward0", "CatBackward0", "StackBackward0",
    "SplitBackward0", "SplitWithSizesBackward0", "UnbindBackward0", "NarrowBackward0", "ViewAsRealBackward0",
})
# Bound at import, before any submission exists: what the harness calls on a submission's tensors
# cannot be a method or attribute the submission replaced (a tensor subclass, a patched torch).
_is_floating = torch.Tensor.is_floating_point
_detach = torch.Tensor.detach
_requires_grad_ = torch.Tensor.requires_grad_
_requires_grad = torch._C.TensorBase.requires_grad.__get__
_grad_fn = torch._C.TensorBase.grad_fn.__get__
_size = torch.Tensor.size
_to = torch.Tensor.to
_zeros_like = torch.zeros_like
_randn = torch.randn
_Generator = torch.Generator
_autograd_grad = torch.autograd.grad
_OwnFunctionNode = torch.autograd.function.BackwardCFunction


class BackwardError(RuntimeError):
    """A backward call that cannot be made as the task defines it (the message says what to change)."""


def is_float_tensor(value) -> bool:
    return isinstance(value, torch.Tensor) and _is_floating(value)


def leaves(args: list) -> list:
    """Each floating input as a new autograd leaf sharing the input's storage (refills stay visible)."""
    return [_requires_grad_(_detach(a)) if is_float_tensor(a) else a for a in args]


def upstream(seed: int, specs: list[tuple]) -> list[torch.Tensor]:
    """The gradients flowing into the outputs: standard normal, one per ``(shape, dtype, device)``."""
    gen = _Generator().manual_seed((seed ^ GRAD_SEED) & ((1 << 63) - 1))
    return [_to(_randn(shape, generator=gen, dtype=torch.float32), device=device, dtype=dtype)
            for shape, dtype, device in specs]


def specs(outputs: list) -> list[tuple]:
    return [(tuple(_size(o)), o.dtype, o.device) for o in outputs if is_float_tensor(o)]


def detached(values: list) -> list:
    """The outputs as they leave a call: without their graph (they cross the wire as plain tensors)."""
    return [_detach(v) if isinstance(v, torch.Tensor) else v for v in values]


def differentiated(outputs: list) -> list[torch.Tensor]:
    """The floating outputs, each of which must carry a graph; BackwardError names the first that does not."""
    chosen = []
    for i, o in enumerate(outputs):
        if not isinstance(o, torch.Tensor):
            raise BackwardError(f"output {i} is a {type(o).__name__}, not a tensor: gradients cannot flow into it")
        if _is_floating(o):
            if not _requires_grad(o):
                raise BackwardError(f"output {i} does not require grad: on a backward task the outputs must come "
                                    "out of an autograd graph (a torch.autograd.Function whose backward runs your kernels)")
            chosen.append(o)
    return chosen


def reference_params(model) -> list[tuple[str, torch.Tensor]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def named_params(model, names: tuple[str, ...]) -> list[tuple[str, torch.Tensor]]:
    """The candidate's parameters the reference's names point to; BackwardError for a missing one."""
    own = dict(model.named_parameters())
    missing = [n for n in names if n not in own]
    if missing:
        raise BackwardError(f"ModelNew has no parameter {', '.join(map(repr, missing[:4]))}: gradients are checked "
                            f"for each parameter of Model, by name (Model has {', '.join(names)})")
    return [(n, own[n]) for n in names]


def gradients(outputs: list[torch.Tensor], upstream_grads: list, inputs: list, params: list) -> list[torch.Tensor]:
    """d(outputs . upstream) / d(floating inputs, params); a value the outputs do not depend on gets zeros."""
    wrt = [x for x in inputs if is_float_tensor(x)] + [p for _, p in params]
    if not wrt:
        return []
    grads = _autograd_grad(outputs, wrt, upstream_grads, allow_unused=True)
    return [_zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]


def labels(n_outputs: int, inputs: list, params: list) -> list[str]:
    """Names of a call's values, in order, for messages: outputs, then gradients."""
    outs = ["output"] if n_outputs == 1 else [f"output {i}" for i in range(n_outputs)]
    grads = [f"gradient of input {i}" for i, x in enumerate(inputs) if is_float_tensor(x)]
    return outs + grads + [f"gradient of {name}" for name, _ in params]


def foreign_nodes(outputs: list, limit: int = 2000) -> list[str]:
    """Autograd nodes behind ``outputs`` that compute (not own Functions, leaves or shape moves): where
    one sits, torch's autograd derives part of the gradient, not the submission's backward."""
    seen, found = set(), []
    stack = [_grad_fn(o) for o in outputs if isinstance(o, torch.Tensor) and _grad_fn(o) is not None]
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        name = type(node).__name__
        if not isinstance(node, _OwnFunctionNode) and name not in SHAPE_NODES:
            if name not in found:
                found.append(name)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return found
