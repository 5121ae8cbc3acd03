"""``kernel-env cache info|clear``: what the disk cache holds, and removing it."""

import json

import pytest

from kernel_env.cli import CACHE_NAMESPACES, main
from kernel_env.evaluator.disk_cache import NAMESPACES, DiskCache


@pytest.fixture
def filled(tmp_path, monkeypatch):
    """A cache folder (the one the command reads, via the variable) with two references, a compile
    and the secret."""
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERNEL_ENV_CACHE_BYTES", "64M")
    cache = DiskCache()
    cache.put("references", "a", b"x" * 1000)
    cache.put("references", "b", b"y" * 500)
    cache.put("compiles", "c", b"{}")
    cache.secret()
    return cache


def test_info_json_has_the_folder_budget_and_each_namespace(filled, capsys):
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dir"] == str(filled.root) and info["max_bytes"] == 64 << 20 and info["secret"] is True
    assert info["namespaces"]["references"]["entries"] == 2 and info["namespaces"]["compiles"]["entries"] == 1
    assert info["bytes"] == sum(p.stat().st_size for p in filled.root.rglob("*.entry"))


def test_info_text_names_the_folder_and_the_namespaces(filled, capsys):
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(filled.root) in out and "64.0 MiB" in out and "references" in out and "compiles" in out
    assert "persistent secret: present" in out


def test_info_on_a_missing_folder_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path / "none"))
    assert main(["cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == 0 and not (tmp_path / "none").exists()


def test_clear_one_namespace_keeps_the_others_and_the_secret(filled, capsys):
    secret = filled.secret()
    assert main(["cache", "clear", "--namespace", "references"]) == 0
    assert "removed 2 references entries" in capsys.readouterr().out
    assert filled.get("references", "a") is None and filled.get("compiles", "c") == b"{}"
    assert filled.secret() == secret


def test_clear_everything_and_the_secret(filled, capsys):
    secret = filled.secret()
    assert main(["cache", "clear", "--secret"]) == 0
    assert "removed 3 cache entries and the persistent secret" in capsys.readouterr().out
    assert filled.info()["bytes"] == 0 and not (filled.root / "secret").exists()
    assert filled.secret() != secret  # a new one is drawn on next use


def test_clear_refuses_an_unknown_namespace(filled, capsys):
    with pytest.raises(SystemExit):
        main(["cache", "clear", "--namespace", "secrets"])
    assert filled.info()["bytes"] > 0


def test_the_command_knows_every_namespace():
    assert set(CACHE_NAMESPACES) == set(NAMESPACES)
