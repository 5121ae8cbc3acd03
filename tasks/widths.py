"""Find the integer literals, outside the module-level constants, that set a task's sizes.

KernelBench networks (VGG, ResNet, DenseNet, MobileNet, ...) write their layer widths inside the
model (``nn.Conv2d(64, 128, 3)``, ``self.in_channels = 64``, ``cfg = [64, 128, 'M']``,
``MBConv(32, 16, kernel_size=3)``) and some sizes inside ``get_inputs`` (``torch.rand(n, 3, 224, 224)``).
Scaling only the module-level constants cannot make such a task small, so this module lists:

- **sizes**: literals that scale like the module-level constants: the dimensions written in
  ``get_inputs`` and the ``Model.__init__`` defaults that ``get_init_inputs`` does not pass
  (``img_size=224`` must follow the ``image_size`` constant the inputs use);
- **widths**: literals that flow into the width arguments of layer constructors, found by following
  the data flow backwards from those arguments through assignments, loops, helper calls and
  attributes. Kernel sizes, strides, paddings, group and head counts are never widths.

Each literal is named by its source position (``"label@line:col"``, the key a preset uses) so the
program is edited in place and stays readable.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field

from .task import _sizes, parse

#: Literals below this are a shape's small parts (RGB channels, kernel sizes, counts): never scaled.
MIN_SCALED = 8
#: Names whose values are never widths, however they are used.
NOT_WIDTH = re.compile(r"group|head|kernel|stride|pad|dilation|layers|blocks|depth|window|patch|ratio|repeat", re.I)
#: Constructor -> (positional indices, keywords) of the arguments that are widths.
_CONV = ((0, 1), ("in_channels", "out_channels"))
_NORM = ((0,), ("num_features",))
_RNN = ((0, 1), ("input_size", "hidden_size", "proj_size"))
#: The label a width literal gets, by the constructor it reaches (names ``shrink`` knows as widths).
KIND = {"Linear": "features", "Bilinear": "features", "MultiheadAttention": "embed", "Embedding": "embed",
        "TransformerEncoderLayer": "embed", "TransformerDecoderLayer": "embed", "Transformer": "embed",
        "LSTM": "hidden", "GRU": "hidden", "RNN": "hidden", "LSTMCell": "hidden", "GRUCell": "hidden",
        "RNNCell": "hidden"}
WIDTH_SLOTS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    **{f"{k}{d}d": _CONV for k in ("Conv", "ConvTranspose") for d in (1, 2, 3)},
    **{f"{k}{d}d": _NORM for k in ("BatchNorm", "InstanceNorm") for d in (1, 2, 3)},
    "SyncBatchNorm": _NORM, "LayerNorm": ((0,), ("normalized_shape",)), "RMSNorm": ((0,), ("normalized_shape",)),
    "GroupNorm": ((1,), ("num_channels",)),
    "Linear": ((0, 1), ("in_features", "out_features")),
    "Bilinear": ((0, 1, 2), ("in1_features", "in2_features", "out_features")),
    "MultiheadAttention": ((0,), ("embed_dim", "kdim", "vdim")),
    "Embedding": ((1,), ("embedding_dim",)),
    "TransformerEncoderLayer": ((0, 2), ("d_model", "dim_feedforward")),
    "TransformerDecoderLayer": ((0, 2), ("d_model", "dim_feedforward")),
    "Transformer": ((0,), ("d_model", "dim_feedforward")),
    "LSTM": _RNN, "GRU": _RNN, "RNN": _RNN, "LSTMCell": _RNN, "GRUCell": _RNN, "RNNCell": _RNN,
}
#: Where a constructor takes a group or head count the widths beside it must stay multiples of.
DIVISOR_SLOTS = {"GroupNorm": (0, "num_groups"), "MultiheadAttention": (1, "num_heads"),
                 "TransformerEncoderLayer": (1, "nhead"), "TransformerDecoderLayer": (1, "nhead")}
#: Tensor factories whose integer arguments are sizes, when called in ``get_inputs``.
FACTORIES = {"rand", "randn", "randint", "zeros", "ones", "empty", "full", "arange", "randperm"}
_PASS_THROUGH = {"int", "round", "float", "abs", "ceil", "floor", "list", "tuple", "sorted", "reversed"}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Module)


def key(label: str, node: ast.expr) -> str:
    """The preset key of the literal ``node``: its position, with a label saying what it is."""
    return f"{label}@{node.lineno}:{node.col_offset}"


def _int_literal(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _callee_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _args(fn: ast.FunctionDef | ast.Lambda) -> list[ast.arg]:
    return [*fn.args.posonlyargs, *fn.args.args]


@dataclass
class Literals:
    """The literals of one task that a preset may set beyond its named constants."""

    sizes: dict[str, int] = field(default_factory=dict)  # key -> value: input sizes, unpassed defaults
    widths: dict[str, int] = field(default_factory=dict)  # key -> value: layer widths in the model
    wide: set[str] = field(default_factory=set)  # module constants and sizes that are layer widths too
    divisors: dict[str, int] = field(default_factory=dict)  # width key -> count it must stay a multiple of
    tied: dict[str, str] = field(default_factory=dict)  # ``groups=32`` beside 32 channels (depthwise): follows

    def fit(self, preset: dict[str, int]) -> dict[str, int]:
        """Repair a scaled preset: each width stays a multiple of the group or head count beside it,
        with at least ``min(width / count, 4)`` per group or head, and a depthwise ``groups=``
        literal follows its channels."""
        out = dict(preset)
        for k, g in self.divisors.items():
            if k in out:
                v = self.widths[k]
                out[k] = max(g * min(v // g, 4), math.ceil(out[k] / g) * g)
                if out[k] == v:
                    del out[k]
        out.update({g: out[w] for g, w in self.tied.items() if w in out})
        return out


NONE: frozenset = frozenset()


def _union(sets) -> frozenset:
    return frozenset().union(*sets)


class _Flow:
    """Backward data flow from layer width arguments to the integer literals that set them."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.parent = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        self.found: dict[ast.Constant, str] = {}  # literal -> label (the constructor it reaches)
        self.divisors: dict[ast.Constant, int] = {}  # width literal -> literal group/head count beside it
        self.tied: dict[ast.Constant, ast.Constant] = {}  # depthwise ``groups=`` literal -> its channels
        self._seen: dict = {}  # followed name -> the width literals that set it
        self.classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        self.calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]

    # -- scopes and resolution -------------------------------------------------------------------
    def scope(self, node) -> ast.AST:
        node = self.parent.get(node)
        while not isinstance(node, _SCOPES):
            node = self.parent[node]
        return node

    def enclosing_class(self, node) -> ast.ClassDef | None:
        while node is not None and not isinstance(node, ast.ClassDef):
            node = self.parent.get(node)
        return node

    def _binds(self, scope, name: str) -> bool:
        if not isinstance(scope, ast.Module) and name in {a.arg for a in _args(scope)}:
            return True
        return any(True for _ in self._assignments(scope, name))

    def binding_scope(self, scope, name: str):
        while not isinstance(scope, ast.Module) and not self._binds(scope, name):
            scope = self.scope(scope)
        return scope

    def _own_nodes(self, scope):
        """Nodes of ``scope`` itself, not of functions or classes defined inside it."""
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            n = todo.pop()
            yield n
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                todo.extend(ast.iter_child_nodes(n))

    def _assignments(self, scope, name: str):
        """(value, element path) pairs binding ``name`` in ``scope``; a loop binds its items."""
        for n in self._own_nodes(scope):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    yield from self._match(t, n.value, name)
            elif isinstance(n, (ast.AnnAssign, ast.AugAssign)) and n.value is not None:
                yield from self._match(n.target, n.value, name)
            elif isinstance(n, (ast.For, ast.comprehension)):
                yield from self._match(n.target, _Loop(n.iter), name)

    @staticmethod
    def _match(target, value, name):
        """(value, element path) for ``name`` in an assignment target; a loop value says which
        element of each item the name takes (``None``: the whole item)."""
        if isinstance(target, ast.Name) and target.id == name:
            yield value, ()
        elif isinstance(target, (ast.Tuple, ast.List)):
            for i, t in enumerate(target.elts):
                if isinstance(t, ast.Name) and t.id == name:
                    if isinstance(value, _Loop):
                        yield _Loop(value.iterable, i), ()
                    elif isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                        yield value.elts[i], ()
                    else:
                        yield value, (i,)

    def resolve(self, call: ast.Call) -> ast.FunctionDef | None:
        """The function a call runs (a class means its ``__init__``), when it is defined in this file."""
        f = call.func
        if isinstance(f, ast.Name):
            scope = self.scope(call)
            while True:
                for n in (scope.body if isinstance(scope, (ast.Module, ast.FunctionDef)) else []):
                    if isinstance(n, ast.FunctionDef) and n.name == f.id:
                        return n
                    if isinstance(n, ast.ClassDef) and n.name == f.id:
                        return self._init(n)
                if isinstance(scope, ast.Module):
                    return None
                scope = self.scope(scope)
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            cls = self.enclosing_class(call)
            if cls is not None:
                return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == f.attr), None)
        return None

    @staticmethod
    def _init(cls: ast.ClassDef) -> ast.FunctionDef | None:
        return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)

    def _is_method(self, fn) -> bool:
        return isinstance(self.parent.get(fn), ast.ClassDef)

    # -- the flow ----------------------------------------------------------------------------------
    def want(self, expr, scope, path: tuple = (), label: str = "width") -> frozenset:
        """``expr`` (evaluated in ``scope``) is a width; with ``path``, an element of it is:
        ``"*"`` is every element of a sequence, an int one element (a loop row's field).
        Returns the integer literals of width size that set it (none for ``alpha = 1.0``)."""
        if isinstance(expr, _Loop):
            return self._want_loop(expr, scope, path, label)
        if _int_literal(expr):
            if not path and expr.value >= MIN_SCALED:
                self.found.setdefault(expr, label)
                return frozenset([expr])
            return NONE
        if isinstance(expr, (ast.List, ast.Tuple)):
            if not path:
                return _union([self.want(e, scope, (), label) for e in expr.elts])
            if path[0] == "*":
                return _union([self.want(e, scope, path[1:], label) for e in expr.elts])
            if isinstance(path[0], int) and -len(expr.elts) <= path[0] < len(expr.elts):
                return self.want(expr.elts[path[0]], scope, path[1:], label)
            return NONE
        if isinstance(expr, ast.BinOp):
            return self._want_binop(expr, scope, path, label)
        if isinstance(expr, ast.UnaryOp):
            return self.want(expr.operand, scope, path, label)
        if isinstance(expr, ast.IfExp):
            return _union([self.want(expr.body, scope, path, label), self.want(expr.orelse, scope, path, label)])
        if isinstance(expr, ast.Subscript):
            return self.want(expr.value, scope, ("*", *path), label)
        if isinstance(expr, ast.Call):
            name = _callee_name(expr)
            if name in ("max", "min"):
                return _union([self.want(a, scope, path, label) for a in expr.args])
            if expr.args and (name in _PASS_THROUGH or self.resolve(expr) is not None):
                return self.want(expr.args[0], scope, path, label)  # _make_divisible(c, 8): the width is c
            return NONE
        if isinstance(expr, ast.Name):
            return self._want_name(expr.id, scope, path, label)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            return self._want_attribute(expr, scope, path, label)
        return NONE

    def _want_binop(self, expr: ast.BinOp, scope, path, label) -> frozenset:
        if isinstance(expr.op, (ast.Add, ast.Sub)):
            return _union([self.want(expr.left, scope, path, label), self.want(expr.right, scope, path, label)])
        if not isinstance(expr.op, ast.Mult):  # a // b, a ** b, a % b: the width is a
            return self.want(expr.left, scope, path, label)
        if isinstance(expr.left, (ast.List, ast.Tuple)) or isinstance(expr.right, (ast.List, ast.Tuple)):
            seq = expr.left if isinstance(expr.left, (ast.List, ast.Tuple)) else expr.right
            return self.want(seq, scope, path, label)  # [1024] * 16: the list, not the count
        factors, todo = [], [expr]
        while todo:  # flatten a * b * c
            f = todo.pop(0)
            if isinstance(f, ast.BinOp) and isinstance(f.op, ast.Mult):
                todo[:0] = [f.left, f.right]
            else:
                factors.append(f)
        named = _union([self.want(f, scope, path, label) for f in factors if not _int_literal(f)])
        if named:  # features * 8: the width is features, 8 a multiplier that scaling keeps
            return named
        # 256 * 6 * 6, int(32 * alpha): the first large literal is the width, the rest a spatial size
        literal = next((f for f in factors if _int_literal(f) and f.value >= MIN_SCALED), None)
        return self.want(literal, scope, path, label) if literal is not None else NONE

    def _want_loop(self, loop: "_Loop", scope, path, label) -> frozenset:
        """A loop variable is a width: so are the matching elements of what it iterates over
        (``range(n)`` gives counters, never widths)."""
        it, i = loop.iterable, loop.index
        name = _callee_name(it) if isinstance(it, ast.Call) else None
        if name in ("enumerate", "zip"):
            arg = 0 if name == "enumerate" else i
            if i is not None and (name == "zip" or i == 1) and arg < len(it.args):
                return self.want(it.args[arg], scope, ("*", *path), label)
            return NONE
        if name == "range":
            return NONE
        return self.want(it, scope, ("*", *path) if i is None else ("*", i, *path), label)

    def _memo(self, key, compute) -> frozenset:
        """Each name is followed once; a name met again answers what it found (in a cycle: nothing)."""
        if key not in self._seen:
            self._seen[key] = NONE
            self._seen[key] = compute()
        return self._seen[key]

    def _want_name(self, name: str, scope, path, label) -> frozenset:
        if NOT_WIDTH.search(name) or name == "self":
            return NONE
        bscope = self.binding_scope(scope, name)

        def compute():
            found = [self.want(value, bscope, (*sub, *path), label) for value, sub in self._assignments(bscope, name)]
            if isinstance(bscope, (ast.FunctionDef, ast.Lambda)):
                names = [a.arg for a in _args(bscope)]
                if name in names:
                    found.append(self._want_param(bscope, names.index(name), name, path, label))
            return _union(found)

        return self._memo((id(bscope), name, path), compute)

    def _want_param(self, fn, index: int, name: str, path, label) -> frozenset:
        """A width parameter: its default and what every call in the file passes for it."""
        params = _args(fn)
        defaults = fn.args.defaults
        first_default = len(params) - len(defaults)
        found = []
        if index >= first_default:
            found.append(self.want(defaults[index - first_default], self.scope(fn), path, label))
        skip = 1 if self._is_method(fn) else 0
        for call in self.calls:
            if self.resolve(call) is not fn:
                continue
            pos = index - skip
            starred = any(isinstance(a, ast.Starred) for a in call.args[: pos + 1])
            if 0 <= pos < len(call.args) and not starred:
                found.append(self.want(call.args[pos], self.scope(call), path, label))
            found += [self.want(kw.value, self.scope(call), path, label) for kw in call.keywords if kw.arg == name]
        if fn.name == "__init__" and getattr(self.parent.get(fn), "name", None) == "Model":
            passed = _init_inputs(self.tree)
            if passed is not None and 0 <= index - 1 < len(passed):
                found.append(self.want(passed[index - 1], self.scope(passed[index - 1]), path, label))
        return _union(found)

    def _want_attribute(self, expr: ast.Attribute, scope, path, label) -> frozenset:
        if NOT_WIDTH.search(expr.attr):
            return NONE
        base = expr.value.id
        cls = self.enclosing_class(expr) if base == "self" else self.classes.get(base)
        if cls is None:
            return NONE

        def compute():
            found = []
            for n in ast.walk(cls):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
                for t in targets:
                    own = (isinstance(t, ast.Attribute) and t.attr == expr.attr and isinstance(t.value, ast.Name)
                           and t.value.id == "self") or (isinstance(t, ast.Name) and t.id == expr.attr
                                                         and self.parent.get(n) is cls)
                    if own and n.value is not None:
                        found.append(self.want(n.value, self.scope(n), path, label))
            return _union(found)

        return self._memo((cls.name, expr.attr, path), compute)

    def sinks(self):
        """Follow every width argument of every layer constructor in the file."""
        for call in self.calls:
            name = _callee_name(call)
            if name not in WIDTH_SLOTS:
                continue
            positions, keywords = WIDTH_SLOTS[name]
            args = [a for i, a in enumerate(call.args) if i in positions]
            args += [kw.value for kw in call.keywords if kw.arg in keywords]
            scope = self.scope(call)
            reached = [self.want(a, scope, (), KIND.get(name, "channels")) for a in args]
            divisor = self._divisor(call, name)
            g = divisor.value if _int_literal(divisor) and divisor.value > 1 else None
            depthwise = next((a for a in args if _int_literal(a) and a.value == g), None)
            if depthwise is not None and name.startswith("Conv"):
                self.tied[divisor] = depthwise  # groups = channels: the group count follows the width
            elif g:
                for lit in _union(reached):  # channels passed down to a grouped conv stay multiples
                    self.divisors[lit] = math.lcm(self.divisors.get(lit, 1), g)

    @staticmethod
    def _divisor(call: ast.Call, name: str):
        index, kw = DIVISOR_SLOTS.get(name, (None, "groups"))
        for k in call.keywords:
            if k.arg == kw:
                return k.value
        return call.args[index] if index is not None and index < len(call.args) else None


@dataclass(frozen=True)
class _Loop:
    """The value a loop target takes: items of ``iterable`` (element ``index`` of each, if set)."""

    iterable: ast.expr
    index: int | None = None


def _init_inputs(tree: ast.Module) -> list[ast.expr] | None:
    """What ``get_init_inputs`` returns, element by element, when it returns a list literal."""
    for n in tree.body:
        if isinstance(n, ast.FunctionDef) and n.name == "get_init_inputs":
            for r in ast.walk(n):
                if isinstance(r, ast.Return) and isinstance(r.value, (ast.List, ast.Tuple)):
                    return list(r.value.elts)
            return None
    return None


def _module_constant_nodes(tree: ast.Module) -> dict[ast.AST, str]:
    """Literals the module-level constant presets own (``n = 64``, ``shape = (64, 32)``, each literal
    of ``dim = 2048 * 2``), by constant name."""
    return {sub: name for name, _, node in _sizes(tree) for sub in ast.walk(node)}


def _input_sizes(tree: ast.Module) -> dict[ast.Constant, str]:
    """Integer literals that give tensor dimensions in ``get_inputs``: ``torch.rand(n, 3, 224, 224)``."""
    out = {}
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "get_inputs"):
            continue
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and _callee_name(call) in FACTORIES):
                continue
            name = _callee_name(call)
            dims = call.args[-1:] if name == "randint" else call.args[:1] if name == "full" else call.args
            dims = [*dims, *(k.value for k in call.keywords if k.arg == "size")]
            for d in dims:
                for e in (d.elts if isinstance(d, (ast.Tuple, ast.List)) else [d]):
                    if _int_literal(e) and e.value >= MIN_SCALED:
                        out[e] = "input"
    return out


def _unpassed_defaults(tree: ast.Module) -> dict[ast.Constant, str]:
    """``Model.__init__`` defaults that ``get_init_inputs`` does not pass: they are the task's sizes
    as surely as its module constants (Swin's ``img_size=224`` must follow the inputs' 224)."""
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    init = _Flow._init(model) if model else None
    passed = _init_inputs(tree)
    if init is None or passed is None or any(isinstance(p, ast.Starred) for p in passed):
        return {}
    params = _args(init)[1:]
    defaults = init.args.defaults
    first = len(params) - len(defaults)
    out = {}
    for i, (p, d) in enumerate(zip(params[first:], defaults), start=first):
        if i < len(passed):
            continue
        for j, e in enumerate(d.elts if isinstance(d, (ast.List, ast.Tuple)) else [d]):
            if _int_literal(e) and e.value >= MIN_SCALED:
                out[e] = p.arg if e is d else f"{p.arg}[{j}]"
    return out


def find_literals(source: str) -> Literals:
    """The size and width literals of a task, each under its preset key."""
    tree = parse(source)
    owned = _module_constant_nodes(tree)
    sizes = {n: label for n, label in {**_input_sizes(tree), **_unpassed_defaults(tree)}.items() if n not in owned}
    flow = _Flow(tree)
    flow.sinks()
    widths = {n: label for n, label in flow.found.items() if n not in owned and n not in sizes}
    result = Literals(
        sizes={key(label, n): n.value for n, label in sizes.items()},
        widths={key(label, n): n.value for n, label in widths.items()},
        wide={owned[n] for n in flow.found if n in owned} | {key(sizes[n], n) for n in flow.found if n in sizes},
    )
    by_value: dict[int, int] = {}  # equal widths are most likely one width: they keep one divisor
    for n, g in flow.divisors.items():
        by_value[n.value] = math.lcm(by_value.get(n.value, 1), g)
    result.divisors = {key(label, n): by_value[n.value] for n, label in widths.items() if n.value in by_value}
    result.tied = {key("groups", g): key(widths[w], w) for g, w in flow.tied.items() if w in widths}
    return result
