"""What the disk cache saves a one-shot command: ``kernel-env eval`` of the bundled ReLU (interpreter,
small size), each call a fresh evaluator as the CLI builds it, with a warm disk cache (every seed set
of the task stored) and with a cold one (an empty folder, so a new secret and a reference run).

Both include the worker's start (a sandboxed Python importing torch and Triton): the difference is
the reference run alone. Run with ``make bench`` or ``pytest benchmarks/test_disk_cache.py --benchmark-enable``.
"""

import contextlib
import io
import itertools
import json
import statistics
from pathlib import Path

import pytest

from kernel_env import EvalConfig, Evaluator
from kernel_env.cli import main
from kernel_env.evaluator.disk_cache import DiskCache
from kernel_env.evaluator.plan import SEED_SETS, SeedSet
from kernel_env.evaluator.sandbox import bwrap_works

TASK = "L1/19_ReLU"
SOLUTION = Path(__file__).parents[1] / "tasks" / "bundled" / "level1" / "19_ReLU.solution.md"
ARGS = ["eval", "--task", TASK, "--solution", str(SOLUTION), "--backend", "interpreter", "--json"]
pytestmark = pytest.mark.skipif(not bwrap_works(), reason="the disk cache is refused without bubblewrap")


def cli_eval() -> dict:
    """One ``kernel-env eval --json`` in this process: its result as the command prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(ARGS)
    result = json.loads(out.getvalue())
    assert code == 0 and result["correct"], result.get("error")
    return result


def fill_every_seed_set(root: Path, task) -> None:
    """Store the reference of each of the task's seed sets, so that any call the CLI makes hits."""
    config = EvalConfig()
    with Evaluator(backend="interpreter", workers=1, disk_cache=DiskCache(root)) as ev:
        for number in range(SEED_SETS):
            seeds = SeedSet.derive(ev._seed_secret, task.hash, "small", config.digest, number)
            ev._reference(task, "small", config, seeds)


def _record(benchmark, results: list[dict]) -> None:
    """Medians of the result's stages: the first request to a fresh evaluator also starts its worker,
    so ``reference`` holds the worker's start when cold and ``sandbox`` holds it when warm."""
    medians = {f"{stage}_s_median": round(statistics.median(r["timings"].get(stage, 0.0) for r in results), 3)
               for stage in ("reference", "sandbox", "total")}
    benchmark.extra_info.update(medians)
    print(f"\n{medians} over {len(results)} calls")


def test_eval_with_a_warm_disk_cache(benchmark, bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path))
    fill_every_seed_set(tmp_path, bundled[TASK])
    stored = DiskCache(tmp_path).info()["namespaces"]["references"]["entries"]
    results = []
    benchmark.pedantic(lambda: results.append(cli_eval()), rounds=3, iterations=1, warmup_rounds=0)
    assert DiskCache(tmp_path).info()["namespaces"]["references"]["entries"] == stored  # every call hit
    _record(benchmark, results)


def test_eval_with_a_cold_disk_cache(benchmark, tmp_path, monkeypatch):
    folders = (tmp_path / f"cold-{i}" for i in itertools.count())

    def empty_folder():
        monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(next(folders)))
        return (), {}

    results = []
    benchmark.pedantic(lambda: results.append(cli_eval()), setup=empty_folder, rounds=3, iterations=1)
    _record(benchmark, results)
