"""The dependency rules, read from the source: every import statement (top-level or inside a function).

- ``kernel_env/inside`` runs next to candidate code: it imports only itself and the shared modules.
- ``kernel_env/evaluator`` starts the inside as processes and never imports it.
- ``tasks`` imports neither ``kernel_env`` nor ``agents``; ``kernel_env`` never imports ``agents``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = {"kernel_env", "kernel_env.protocol", "kernel_env.wire", "kernel_env.config"}  # and what they define


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # ``from . import wire`` names a module
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def ours(names: set[str], root: str) -> set[str]:
    return {n for n in names if n == root or n.startswith(root + ".")}


def test_imports_are_resolved():
    names = imports_of(ROOT / "kernel_env" / "inside" / "runner.py")
    assert {"kernel_env.wire", "kernel_env.protocol", "kernel_env.inside.guards"} <= names


@pytest.mark.parametrize("path", modules("kernel_env/inside"), ids=lambda p: p.name)
def test_the_inside_imports_only_the_shared_modules(path):
    allowed = ("kernel_env.inside", *SHARED - {"kernel_env"})
    bad = {n for n in ours(imports_of(path), "kernel_env")
           if n != "kernel_env" and not any(n == a or n.startswith(a + ".") for a in allowed)}
    assert not bad, f"{path.name} imports the trusted side: {sorted(bad)}"


@pytest.mark.parametrize("path", modules("kernel_env/evaluator"), ids=lambda p: p.name)
def test_the_evaluator_never_imports_the_inside(path):
    assert not ours(imports_of(path), "kernel_env.inside"), path.name


@pytest.mark.parametrize("folder, forbidden", [("tasks", ("kernel_env", "agents")), ("kernel_env", ("agents",))])
def test_packages_depend_one_way(folder, forbidden):
    bad = {f"{p.relative_to(ROOT)}: {n}"
           for p in modules(folder) for root in forbidden for n in ours(imports_of(p), root)}
    assert not bad, sorted(bad)


def test_a_rule_breaker_would_be_caught(tmp_path):
    """A relative import of the trusted side from an inside module, and a lazy one inside a function."""
    probe = tmp_path / "kernel_env" / "inside" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..evaluator.judge import Judge\n\ndef later():\n    import agents.trainer\n")
    names = imports_of(probe, root=tmp_path)
    assert "kernel_env.evaluator.judge" in names and ours(names, "agents") == {"agents.trainer"}


def test_import_kernel_env_registers_without_torch():
    code = ("import sys, gymnasium as gym, kernel_env; gym.register_envs(kernel_env); "
            "assert 'kernel_env/KernelBench-L1-v0' in gym.registry; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
