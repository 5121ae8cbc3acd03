"""The task model: one KernelBench-format program plus its size presets.

A task file defines ``class Model``, ``get_inputs()`` and ``get_init_inputs()`` and keeps its sizes in
module-level integer constants. A preset is a mapping ``{constant: value}`` applied by rewriting those
assignments in the source, so derived constants (``hidden = 4 * dim``) follow and the program the LLM
reads is exactly the program that runs. A preset may also set integer literals elsewhere in the file
(a layer width inside the model, a size written in ``get_inputs``): such an entry is keyed by the
literal's position in the source, ``"label@line:col"`` (the label only says what it is).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import types
from dataclasses import dataclass, field, replace
from typing import Mapping

#: The preset that means "the file as written" (benchmark scale for KernelBench files).
FULL = "full"
SMALL = "small"
#: Name of the optional module-level dict in bundled files that declares presets.
SIZES_NAME = "SIZES"
#: A preset key that sets the integer literal at a source position rather than a named constant.
LITERAL_KEY = re.compile(r"@(\d+):(\d+)$")


class TaskError(ValueError):
    """A task file is not a valid KernelBench program, or a size preset does not apply."""


@dataclass(frozen=True)
class Task:
    id: str  # "L{level}/{file stem}", e.g. "L1/19_ReLU"
    level: int
    name: str  # the file stem
    source: str  # the file as found
    sizes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    solution: str | None = None  # a reference answer (markdown reply defining ModelNew), if shipped
    origin: str = ""  # where it was loaded from, for messages

    @property
    def hash(self) -> str:
        """Content hash: caches key on this, so editing a file invalidates its cached references.

        Literal edits in a preset change the program beyond what the source says, so they count too
        (a task without any hashes its source alone, as before)."""
        edits = {p: sorted((k, v) for k, v in s.items() if LITERAL_KEY.search(k)) for p, s in self.sizes.items()}
        edits = {p: e for p, e in edits.items() if e}
        text = self.source + ("\0" + json.dumps(edits, sort_keys=True) if edits else "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def has_size(self, size: str) -> bool:
        return size == FULL or size in self.sizes

    def constants(self) -> dict[str, int]:
        """Module-level integer constants as written (the candidates for size presets)."""
        return module_int_constants(self.source)

    def program(self, size: str = FULL) -> str:
        """The source at a preset, without the preset table: what the LLM sees and what runs."""
        if not self.has_size(size):
            raise TaskError(f"{self.id}: no size preset {size!r} (has: {sorted({FULL, *self.sizes})})")
        overrides = {} if size == FULL else dict(self.sizes[size])
        literals = {k: v for k, v in overrides.items() if LITERAL_KEY.search(k)}
        named = {k: v for k, v in overrides.items() if k not in literals}
        source = rewrite_literals(self.source, literals) if literals else self.source
        return rewrite_constants(source, named, drop=(SIZES_NAME,))

    def materialise(self, size: str = FULL) -> types.ModuleType:
        """Execute the program at ``size`` in a fresh module and check its three entry points."""
        return exec_program(self.program(size), f"kernel_task_{self.name}", self.id)

    def with_sizes(self, **presets: Mapping[str, int]) -> "Task":
        return replace(self, sizes={**self.sizes, **presets})


def declares_backward(program: str) -> bool:
    """A backward task says so at module level (``BACKWARD = True``): its calls return gradients too.
    Read from the text, so the trusted side never executes a task to know."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return False
    return any(name == "BACKWARD" and isinstance(value, ast.Constant) and value.value is True
               for name, _, value in _module_assignments(tree))


def exec_program(code: str, module_name: str, label: str) -> types.ModuleType:
    module = types.ModuleType(module_name)
    module.__file__ = f"<{label}>"
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if not hasattr(module, n)]
    if missing:
        raise TaskError(f"{label}: the program does not define {', '.join(missing)}")
    return module


_FOLD = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.FloorDiv: int.__floordiv__,
         ast.LShift: int.__lshift__, ast.Pow: int.__pow__}


def _int_value(node: ast.expr) -> int | None:
    """An integer literal, or arithmetic on literals (``2048 * 2``, ``1 << 20``): KernelBench uses both."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD:
        left, right = _int_value(node.left), _int_value(node.right)
        if left is None or right is None or (isinstance(node.op, (ast.Pow, ast.LShift)) and right > 64):
            return None
        try:
            return _FOLD[type(node.op)](left, right)
        except ZeroDivisionError:
            return None
    return None


def _module_assignments(tree: ast.Module):
    """Yield (name, statement, value node) for top-level assignments: ``a = v``, ``a: int = v``,
    ``a = b = v`` (both names share the value) and ``a, b = v1, v2`` (element-wise)."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node, node.value
                elif (isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                      and len(target.elts) == len(node.value.elts)):
                    for elt, value in zip(target.elts, node.value.elts):
                        if isinstance(elt, ast.Name):
                            yield elt.id, node, value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            yield node.target.id, node, node.value


def _shape_elements(tree: ast.Module):
    """``shape = (4096, 1024)`` at module level: each integer element is a size, named ``shape[i]``."""
    for name, stmt, value in _module_assignments(tree):
        if isinstance(value, (ast.Tuple, ast.List)):
            for i, elt in enumerate(value.elts):
                if _int_value(elt) is not None:
                    yield f"{name}[{i}]", stmt, elt


def _sizes(tree: ast.Module):
    """Everything a preset may set: scalar integer constants and integer elements of shape tuples."""
    for name, stmt, value in _module_assignments(tree):
        if _int_value(value) is not None:
            yield name, stmt, value
    yield from _shape_elements(tree)


def parse(source: str, label: str = "<task>") -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise TaskError(f"{label}: syntax error on line {exc.lineno}: {exc.msg}") from exc


def module_int_constants(source: str) -> dict[str, int]:
    return {name: _int_value(node) for name, _, node in _sizes(parse(source))}


def declared_sizes(source: str, label: str) -> dict[str, dict[str, int]]:
    """Read the literal ``SIZES = {"small": {...}}`` table of a bundled file, if any."""
    for name, _, node in _module_assignments(parse(source, label)):
        if name == SIZES_NAME:
            try:
                table = ast.literal_eval(node)
            except ValueError as exc:
                raise TaskError(f"{label}: {SIZES_NAME} must be a literal dict") from exc
            if not isinstance(table, dict) or not all(
                isinstance(p, str) and isinstance(v, dict) and all(type(x) is int for x in v.values())
                for p, v in table.items()
            ):
                raise TaskError(f"{label}: {SIZES_NAME} must map preset names to {{constant: int}}")
            return table
    return {}


def rewrite_constants(source: str, overrides: Mapping[str, int], drop: tuple[str, ...] = ()) -> str:
    """Replace the values of top-level integer constants, line-precisely, keeping everything else.

    Edits the text rather than unparsing the AST so comments and layout survive for the prompt.
    """
    tree = parse(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int, str]] = []  # (start line, col, end line, end col, text)
    seen: set[str] = set()
    placed: set[tuple[int, int]] = set()  # a value shared by ``a = b = v`` is rewritten once
    for name, stmt, v in [*_module_assignments(tree), *_shape_elements(tree)]:
        if name in drop:
            edits.append((stmt.lineno, 0, stmt.end_lineno, len(lines[stmt.end_lineno - 1].encode()), ""))
        elif name in overrides:
            if _int_value(v) is None:
                raise TaskError(f"size constant {name!r} is not an integer")
            seen.add(name)
            if (v.lineno, v.col_offset) not in placed:
                placed.add((v.lineno, v.col_offset))
                edits.append((v.lineno, v.col_offset, v.end_lineno, v.end_col_offset, str(int(overrides[name]))))
    unknown = set(overrides) - seen
    if unknown:
        raise TaskError(f"no module-level integer constant named {', '.join(sorted(unknown))}")
    return _splice(source, edits)


def rewrite_literals(source: str, values: Mapping[str, int]) -> str:
    """Set the integer literals at the positions ``values`` names (``"label@line:col"`` keys), in place.

    Positions refer to ``source`` as given, so literal edits are applied before constant rewrites."""
    literals = {(n.lineno, n.col_offset): n for n in ast.walk(parse(source))
                if isinstance(n, ast.Constant) and type(n.value) is int}
    edits = []
    for key, value in values.items():
        m = LITERAL_KEY.search(key)
        node = literals.get((int(m.group(1)), int(m.group(2)))) if m else None
        if node is None:
            raise TaskError(f"no integer literal at {key!r}")
        edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, str(int(value))))
    return _splice(source, edits)


def _splice(source: str, edits: list[tuple[int, int, int, int, str]]) -> str:
    """Replace (line, col, end line, end col) spans with text, last first so earlier spans stay valid."""
    lines = source.splitlines(keepends=True)
    for start, col, end, end_col, text in sorted(edits, reverse=True):
        # ast columns count UTF-8 bytes, not characters
        head = "".join(lines[: start - 1]) + lines[start - 1].encode()[:col].decode()
        tail = lines[end - 1].encode()[end_col:].decode() + "".join(lines[end:])
        source = head + text + tail
        lines = source.splitlines(keepends=True)
    return source
