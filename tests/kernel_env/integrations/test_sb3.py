"""Autotuning as RL: the SB3 wrapper passes check_env, and PPO (and MaskablePPO) trained on it beat a
uniformly random choice of candidate, seeded, on the CPU."""

import ast
import warnings

import numpy as np
import pytest

from kernel_env.evaluator.submission import parse_submission
from kernel_env.integrations.sb3 import (
    DEFAULT_TASKS,
    OBS_SIZE,
    KernelTuningEnv,
    candidates,
    episode_seeds,
    launch_variant,
    mean_reward,
    model_policy,
    random_policy,
)

pytestmark = pytest.mark.timeout(900)  # PPO runs: minutes on a loaded 2-core machine
PPO_KW = {"n_steps": 128, "batch_size": 64, "n_epochs": 10, "learning_rate": 1e-3, "seed": 0, "device": "cpu"}
STEPS = 1024
SEEDS = episode_seeds(64)


@pytest.fixture(scope="module")
def tuning(evaluator):
    """The default tasks with every candidate evaluated once: later steps are result-cache hits."""
    env = KernelTuningEnv(evaluator)
    return env, env.prewarm()


def test_candidates_parse_for_every_bundled_task(bundled):
    for task in bundled.values():
        options = candidates(task)
        assert len({c.name for c in options}) == len(options)
        for c in options:
            parse_submission(c.reply)  # a python block defining ModelNew
        assert [c.naive for c in options][-1] and options[-1].name == "naive: torch fallback"


def test_launch_variant_rewrites_constants_and_launches(bundled):
    matmul = parse_submission(bundled["L1/1_Square_matmul"].solution).code
    out = launch_variant(matmul, 2, num_warps=8, num_stages=3)
    assert "BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 64" in out and "num_warps=8, num_stages=3" in out
    reduction = parse_submission(bundled["L1/25_Sum_reduction"].solution).code
    out = launch_variant(reduction, 0.25)
    assert "max(1, (min(triton.next_power_of_2(R)" in out and ast.parse(out)


def test_candidates_verified_by_evaluation(tuning):
    env, results = tuning
    for task, options, outcome in zip(env.tasks, env.candidates, results):
        for c, r in zip(options, outcome):
            if c.name == "naive: torch fallback":
                assert r.hacks and env.reward(env.tasks.index(task), r) == 0.0
            else:
                assert r.clean, (task.id, c.name, r.error, r.hacks)
        rewards = [env.reward(env.tasks.index(task), r) for r in outcome]
        best = options[int(np.argmax(rewards))].name
        assert best.startswith(("blockx2", "blockx4")), (task.id, best)  # bigger blocks: fewer interpreted programs


def test_check_env_passes(evaluator, tuning):
    from stable_baselines3.common.env_checker import check_env

    for turns in (1, 3):
        env = KernelTuningEnv(evaluator, turns=turns)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBS_SIZE,) and env.observation_space.contains(obs)


def test_action_masks_hide_padding(evaluator):
    env = KernelTuningEnv(evaluator, tasks=["L1/19_ReLU", "L3/5_LSTM_cell"])
    env.reset(seed=0, options={"task_id": "L3/5_LSTM_cell"})
    mask = env.action_masks()
    n = len(env.candidates[1])
    assert mask.dtype == bool and mask.shape == (env.n_actions,) and mask.sum() == n < env.n_actions
    _, reward, _, truncated, info = env.step(env.n_actions - 1)  # padding: no evaluation, failure reward
    assert reward == 0.0 and truncated and info["candidate"] == "invalid"


def _trained(cls, env):
    model = cls("MlpPolicy", env, verbose=0, **PPO_KW)
    return model.learn(STEPS)


def test_ppo_beats_random_policy(tuning):
    from stable_baselines3 import PPO

    env, _ = tuning
    ppo = mean_reward(env, model_policy(_trained(PPO, env)), SEEDS)
    uniform = mean_reward(env, random_policy(0), SEEDS)
    print(f"\nPPO {ppo:.3f} vs random {uniform:.3f} (relative reward, {len(SEEDS)} seeded episodes)")
    assert ppo > uniform + 0.5


def test_maskable_ppo_beats_random_policy(evaluator, tuning):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    # the LSTM cell's 32-wide blocks hit the 16 floor at both small scales: one candidate fewer, one padded action
    env = KernelTuningEnv(evaluator, tasks=[*DEFAULT_TASKS, "L3/5_LSTM_cell"],
                          candidate_options={"scales": (0.125, 0.25, 1, 4), "num_warps": (4,)})
    env.prewarm()
    assert sorted({len(c) for c in env.candidates}) == [5, 6]
    ppo = mean_reward(env, model_policy(_trained(sb3_contrib.MaskablePPO, env), masked=True), SEEDS)
    uniform = mean_reward(env, random_policy(0), SEEDS)
    print(f"\nMaskablePPO {ppo:.3f} vs random {uniform:.3f}")
    assert ppo > uniform + 0.3


def test_ppo_on_the_drkernel_reward_avoids_the_hack(evaluator, tuning):
    from stable_baselines3 import PPO

    env = KernelTuningEnv(evaluator, reward="drkernel")
    ppo_model = _trained(PPO, env)
    ppo = mean_reward(env, model_policy(ppo_model), SEEDS)
    uniform = mean_reward(env, random_policy(0), SEEDS)
    print(f"\nPPO {ppo:.3f} vs random {uniform:.3f} (drkernel reward)")
    assert ppo > uniform
    obs, _ = env.reset(seed=0)
    assert env.candidates[env.index][model_policy(ppo_model)(obs, env)].name != "naive: torch fallback"
