"""Every adapter imports without its library: ``kernel_env.integrations`` must never make an optional
extra a requirement. What needs the library (a class built on its base class) fails only when used."""

import subprocess
import sys

import pytest

ADAPTERS = {  # module: (the libraries it must import without, a name that needs them or None)
    "trl": (("trl", "datasets"), None),
    "skyrl": (("skyrl_gym",), "KernelSkyRLEnv"),
    "gem": (("gem",), "KernelGemEnv"),
    "verifiers": (("verifiers", "verifiers.v1"), "KernelTaskset"),
}


@pytest.mark.parametrize("module", ADAPTERS)
def test_an_adapter_imports_without_its_library(module):
    blocked, needs = ADAPTERS[module]
    code = "\n".join([
        "import sys",
        *(f"sys.modules[{lib!r}] = None" for lib in blocked),  # a None entry makes the import fail
        f"import kernel_env.integrations.{module} as m",
        "print('imported')",
        *([f"try:\n    m.{needs}\nexcept ImportError:\n    print('lazy')"] if needs else []),
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["imported", *(["lazy"] if needs else [])]
