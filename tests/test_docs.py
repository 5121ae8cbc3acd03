"""The README stays true to the code it documents."""

from pathlib import Path

from kernel_env import ENV_IDS
from kernel_env.scoring.hacks import HACKS, hack_table

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    head = README.split("```")[1]
    assert "make demo" in head and "make test" in head


def test_readme_hack_table_is_the_generated_one():
    assert hack_table() in README, "regenerate the table from kernel_env.scoring.hacks.hack_table()"
    assert all(f"`{code}`" in README for code in HACKS)


def test_readme_lists_every_env_id():
    assert all(env_id in README for env_id in ENV_IDS)
