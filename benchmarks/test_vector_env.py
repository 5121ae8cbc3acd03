"""Vector-env step throughput on one shared pool (2 interpreter workers): N = 1, 2, 4 episodes
stepped together, every action a fresh evaluation; and the same with cache hits (the env's own cost)."""

import itertools

import pytest
from bench_helpers import median_ms, tagged, timed

from kernel_env import Evaluator, KernelVectorEnv

TASK = "L1/19_ReLU"


@pytest.fixture(scope="module")
def pool(bundled):
    with Evaluator(backend="interpreter", workers=2) as ev:
        task = bundled[TASK]
        ev.map([(task, tagged(task.solution, f"warm {i}")) for i in range(2)])  # reference cached, workers up
        yield ev


@pytest.mark.parametrize("num_envs", [1, 2, 4])
def test_vector_env_step_throughput(benchmark, pool, bundled, num_envs):
    task = bundled[TASK]
    venv = KernelVectorEnv(num_envs=num_envs, tasks=[task], evaluator=pool, max_turns=1)
    venv.reset(seed=0)
    counter = itertools.count()
    times = []

    def step():
        actions = [tagged(task.solution, f"vec {num_envs} {next(counter)}") for _ in range(num_envs)]
        elapsed, out = timed(venv.step, actions)
        times.append(elapsed)
        assert (out[1] > 1.0).all()

    benchmark.pedantic(step, rounds=6, iterations=1, warmup_rounds=1)
    measured = times[-6:]  # without the warm-up round (one round when benchmarks are disabled)
    total = sum(measured)
    benchmark.extra_info.update(num_envs=num_envs, step_ms_median=median_ms(measured),
                                steps_per_s=round(len(measured) / total, 2),
                                evals_per_s=round(len(measured) * num_envs / total, 2))
    venv.close()


@pytest.mark.parametrize("num_envs", [1, 4])
def test_vector_env_cached_step(benchmark, pool, bundled, num_envs):
    """Every action already evaluated: what the env, the feedback and the cache cost per step."""
    task = bundled[TASK]
    venv = KernelVectorEnv(num_envs=num_envs, tasks=[task], evaluator=pool, max_turns=1)
    venv.reset(seed=0)
    venv.step([task.solution] * num_envs)
    times = []

    def step():
        elapsed, _ = timed(venv.step, [task.solution] * num_envs)
        times.append(elapsed)

    benchmark.pedantic(step, rounds=50, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update(num_envs=num_envs, step_ms_median=median_ms(times[-50:]),
                                env_steps_per_s=round(num_envs * len(times[-50:]) / sum(times[-50:]), 1))
    venv.close()
