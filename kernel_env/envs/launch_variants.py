"""The tuning env's actions: a task's shipped Triton solution under other launch configurations.

``BLOCK*`` constants are scaled and ``num_warps``/``num_stages`` set on every own launch by editing
the source text (the AST finds the spots, the text keeps its layout), plus two deliberately naive
variants: a tiny-block kernel that is correct but slow, and a PyTorch fallback the evaluator flags.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from ..evaluator.submission import parse_submission


@dataclass(frozen=True)
class Candidate:
    """One action: a complete reply (markdown with a python block) and what it varies."""

    name: str
    reply: str
    naive: bool = False


def _offset(lines: list[str], lineno: int, col: int) -> int:
    return sum(len(line) for line in lines[: lineno - 1]) + col


def _edit(code: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, text in sorted(edits, reverse=True):
        code = code[:start] + text + code[end:]
    return code


def _scaled(node: ast.expr, src: str, scale: Fraction) -> str:
    """A power-of-two scaling of one launch constant; literals stay literals so the code reads well."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        v = node.value
        return str(max(min(v, 16), int(v * scale)))  # tl.dot needs >= 16; small literals stay as written
    if scale >= 1:
        return f"(({src}) * {int(scale)})"
    return f"max(1, ({src}) // {int(1 / scale)})"


def _block_values(tree: ast.Module) -> list[ast.expr]:
    """Values assigned to ``BLOCK*`` names (``BLOCK = 1024``, ``BLOCK_M, BLOCK_N = 64, 64``) and literal
    ``BLOCK*=`` keywords of calls; scaling the assignment keeps the grid consistent with the kernel."""
    values = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and target.id.startswith("BLOCK"):
                values.append(value)
            elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
                values += [v for t, v in zip(target.elts, value.elts) if isinstance(t, ast.Name) and t.id.startswith("BLOCK")]
        elif (isinstance(node, ast.keyword) and (node.arg or "").startswith("BLOCK")
              and isinstance(node.value, ast.Constant) and type(node.value.value) is int):
            values.append(node.value)
    return values


def _launches(tree: ast.Module, kernels: set[str]) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)
            and isinstance(n.func.value, ast.Name) and n.func.value.id in kernels]


def launch_variant(code: str, scale: Fraction = Fraction(1), num_warps: int | None = None,
                   num_stages: int | None = None) -> str:
    """``code`` with every ``BLOCK*`` constant scaled and the launch options set on every own launch."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    kernels = set(parse_submission(f"```python\n{code}\n```").kernels)
    edits = []
    if scale != 1:
        for node in _block_values(tree):
            start = _offset(lines, node.lineno, node.col_offset)
            end = _offset(lines, node.end_lineno, node.end_col_offset)
            edits.append((start, end, _scaled(node, code[start:end], scale)))
    options = {k: v for k, v in (("num_warps", num_warps), ("num_stages", num_stages)) if v is not None}
    for call in _launches(tree, kernels):
        missing = dict(options)
        for kw in call.keywords:
            if kw.arg in missing:  # already set: replace the value
                start = _offset(lines, kw.value.lineno, kw.value.col_offset)
                edits.append((start, _offset(lines, kw.value.end_lineno, kw.value.end_col_offset), str(missing.pop(kw.arg))))
        if missing:
            last = max([*call.args, *call.keywords], key=lambda n: (n.end_lineno, n.end_col_offset), default=None)
            text = ", ".join(f"{k}={v}" for k, v in missing.items())
            if last is None:
                at = _offset(lines, call.end_lineno, call.end_col_offset) - 1
                edits.append((at, at, text))
            else:
                at = _offset(lines, last.end_lineno, last.end_col_offset)
                edits.append((at, at, ", " + text))
    out = _edit(code, edits)
    ast.parse(out)  # a rewrite that breaks the syntax is a bug here, not a bad candidate
    return out


def _reply(code: str, note: str) -> str:
    return f"{note}\n\n```python\n{code.strip()}\n```\n"


def _label(scale: Fraction) -> str:
    return f"x{scale.numerator}" if scale.denominator == 1 else f"/{scale.denominator}"


def candidates(task, scales: Sequence[float] = (0.25, 0.5, 1, 2, 4), num_warps: Sequence[int | None] = (4, 8),
               num_stages: Sequence[int | None] = (None,), naive: bool = True) -> list[Candidate]:
    """The action list for one task: launch configurations of its shipped solution, then naive variants.

    A solution without ``BLOCK*`` constants gets only the warps/stages variants. Validity is not
    assumed: an oversized block that fails to compile is a legitimate (bad) choice, and evaluation says so.
    """
    if not task.solution:
        raise ValueError(f"{task.id} ships no solution to derive candidates from")
    code = parse_submission(task.solution).code
    tunable = bool(_block_values(ast.parse(code)))
    out, seen = [], set()
    for s in (scales if tunable else (1,)):
        scale = Fraction(s).limit_denominator(64)
        for w in num_warps:
            for st in num_stages:
                variant = launch_variant(code, scale, w, st)
                name = f"block{_label(scale)} warps={w or 'default'} stages={st or 'default'}"
                if variant not in seen:
                    seen.add(variant)
                    out.append(Candidate(name, _reply(variant, f"Launch configuration: {name}.")))
    if naive:
        if tunable:
            tiny = launch_variant(code, Fraction(1, 16))
            out.append(Candidate("naive: tiny blocks", _reply(tiny, "Tiny blocks: many small programs."), True))
        fallback = f"{code.rstrip()}\n\n\n# naive: PyTorch does the work, the kernel above never runs\n" \
                   f"{task.program('full').strip()}\n\n\nclass ModelNew(Model):\n    pass\n"
        out.append(Candidate("naive: torch fallback", _reply(fallback, "Fall back to PyTorch."), True))
    return out
