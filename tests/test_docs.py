"""The README stays true to the code it documents."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_env import ENV_IDS
from kernel_env.scoring.hacks import HACKS, hack_table

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    head = README.split("```")[1]
    assert "make demo" in head and "make test" in head


def test_readme_hack_table_is_the_generated_one():
    assert hack_table() in README, "regenerate the table from kernel_env.scoring.hacks.hack_table()"
    assert all(f"`{code}`" in README for code in HACKS)


def test_readme_lists_every_env_id():
    assert all(env_id in README for env_id in ENV_IDS)


# -- every python block of the README that runs on a CPU is run -----------------------------------

#: written on the line before a block that cannot run here, with the reason
NOT_RUN = re.compile(r"<!-- docs: not run \((?P<why>[^)]+)\) -->")
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```\n(?:```\n(?P<shown>.*?)^```\n)?", re.M | re.S)


def python_blocks() -> list[tuple[int, str, str | None, str | None]]:
    """(line, code, output shown right after it or None, why it is not run or None) per block."""
    blocks = []
    for m in BLOCK.finditer(README):
        before = README[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        why = NOT_RUN.fullmatch(before.strip())
        blocks.append((README.count("\n", 0, m.start()) + 1, m["code"], m["shown"], why and why["why"]))
    return blocks


def _shape(text: str) -> list[str]:
    """Lines with their numbers masked: timings vary, what is printed must not."""
    return [re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", line.rstrip()) for line in text.strip().splitlines()]


def test_the_readme_blocks_are_found_and_few_are_not_run():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert sum(why is not None for *_, why in blocks) <= len(blocks) // 2


@pytest.mark.parametrize("line, code, shown", [b[:3] for b in python_blocks() if b[3] is None],
                         ids=[f"README.md:{b[0]}" for b in python_blocks() if b[3] is None])
def test_a_readme_block_runs_as_shown(line, code, shown, tmp_path):
    """Each block in a fresh interpreter from an empty folder, as a reader pasting it would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr[-3000:]}"
    if shown is not None:
        assert _shape(done.stdout) == _shape(shown), f"README.md:{line} prints:\n{done.stdout}"


def test_the_readme_toml_configs_are_valid_train_configs():
    """Every ```toml block is a ``TrainConfig`` that validates (keys, types, the recipe, the adapter)."""
    import tomllib

    from agents.config import TrainConfig

    blocks = re.findall(r"^```toml\n(.*?)^```\n", README, re.M | re.S)
    assert blocks
    for text in blocks:
        TrainConfig.from_dict(tomllib.loads(text)).validate()
