"""KernelEnv: Gymnasium conformance, full episodes, determinism, and text handling."""

import gymnasium
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import kernel_env
from kernel_env import KernelEnv, RewardConfig
from kernel_env.demo import BROKEN, HACK

RELU = "L1/19_ReLU"
SIGMOID = "L1/8_Sigmoid"


@pytest.fixture
def env(evaluator):
    env = KernelEnv(levels=(1,), evaluator=evaluator, render_mode="ansi")
    yield env
    env.close()


@pytest.mark.parametrize("env_id", kernel_env.ENV_IDS)
def test_check_env_passes_on_every_registered_id(env_id, evaluator):
    env = gymnasium.make(env_id, evaluator=evaluator)
    check_env(env.unwrapped)  # steps with sampled text: parse failures, no sandbox run
    env.close()


def test_check_env_passes_with_the_default_pool_too():
    env = gymnasium.make("kernel_env/KernelBench-L1-v0", backend="interpreter")
    assert env.unwrapped._evaluator is None  # making and resetting never starts a pool
    env.reset(seed=0)
    assert env.unwrapped._evaluator is None
    check_env(env.unwrapped)
    env.close()


def test_registered_ids_serve_their_levels(evaluator):
    levels = {}
    for env_id in kernel_env.ENV_IDS:
        env = gymnasium.make(env_id, evaluator=evaluator)
        levels[env_id] = {t.level for t in env.unwrapped.tasks}
        assert env.unwrapped.spec.nondeterministic
    assert levels["kernel_env/KernelBench-L1-v0"] == {1}
    assert levels["kernel_env/KernelBench-L2-v0"] == {2}
    assert levels["kernel_env/KernelBench-L3-v0"] == {3}
    assert levels["kernel_env/KernelBench-v0"] == {1, 2, 3}
    assert levels["kernel_env/KernelBench-Backward-v0"] == {1, 2}


def test_reset_returns_the_program_and_instructions(env, bundled):
    obs, info = env.reset(seed=0, options={"task_id": RELU})
    assert obs in env.observation_space
    assert bundled[RELU].program("small").strip() in obs  # the exact program that runs
    assert "ModelNew" in obs and "```python" in obs and "@triton.jit" in obs and "3 turns" in obs
    assert "interpreter" in obs  # backend limits are spelled out for the model
    assert info["task_id"] == RELU and info["turn"] == 0 and info["best_speedup"] == 0.0
    assert info["messages"] == [{"role": "user", "content": obs}]


def test_honest_episode(env, bundled):
    env.reset(seed=0, options={"task_id": RELU})
    obs, reward, terminated, truncated, info = env.step(bundled[RELU].solution)
    assert info["correct"] and info["hacks"] == [] and info["stage"] == "done"
    # on the interpreter the reward pays the modelled GPU speedup, not the interpreter's wall clock
    assert info["modelled_speedup"] > 0.5 and info["speedup"] < 0.1
    assert reward == pytest.approx(1 + min(info["modelled_speedup"], 3) + info["coverage"])
    assert (terminated, truncated) == (False, False)
    assert info["turn"] == 1 and info["task_id"] == RELU and info["best_speedup"] == info["modelled_speedup"] > 0
    assert obs.startswith("Turn 1 of 3. Your kernel is correct.") and "2 more turns" in obs
    assert [m["role"] for m in info["messages"]] == ["user", "assistant", "user"]
    assert info["messages"][1]["content"] == bundled[RELU].solution and info["messages"][2]["content"] == obs
    assert set(info) >= {"compiled", "correct", "hacks", "speedup", "coverage", "feedback", "error", "timings"}


def test_hack_broken_honest_episode_with_truncation(env, bundled):
    env.reset(seed=0, options={"task_id": RELU})
    steps = [env.step(reply) for reply in (HACK, BROKEN, bundled[RELU].solution)]
    (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2), (o3, r3, te3, tr3, i3) = steps
    assert i1["hacks"] == ["no_own_kernel_launched"] and r1 == 0.0 and "reward hacking" in o1
    assert not i2["correct"] and i2["hacks"] == [] and r2 == 0.0 and "incorrect" in o2
    assert i3["correct"] and r3 > 1.0
    assert [tr1, tr2, tr3] == [False, False, True] and not (te1 or te2 or te3)
    assert "The episode is over." in o3 and i3["turn"] == 3
    assert i1["best_speedup"] == i2["best_speedup"] == 0.0 < i3["best_speedup"]
    assert len(i3["messages"]) == 7
    text = env.render()
    assert HACK.strip() in text and "reward 0.000" in text and f"reward {r3:.3f}" in text
    with pytest.raises(ResetNeeded):
        env.step("one more")


def test_any_text_is_a_valid_action(env):
    env.reset(seed=0, options={"task_id": RELU})
    for text in ["", "I don't know.", "```python\ndef broken(:\n```", "ünïcödé ✓"]:
        obs, reward, _, truncated, info = env.step(text)
        assert obs in env.observation_space and reward == 0.0 and not info["compiled"]
        assert info["error"] and info["feedback"] in obs
        if truncated:
            env.reset(seed=0, options={"task_id": RELU})
    with pytest.raises(TypeError, match="text"):
        env.step(42)


def test_compile_errors_show_the_traceback(env):
    env.reset(seed=0, options={"task_id": RELU})
    reply = "```python\nimport torch\nclass ModelNew(torch.nn.Module):\n    def __init__(self):\n" \
            "        super().__init__()\n        1 / 0\n```"
    obs, reward, _, _, info = env.step(reply)
    assert info["stage"] == "compile" and "ZeroDivisionError" in obs and "1 / 0" in obs and reward == 0.0


def test_task_choice_is_determined_by_the_seed(evaluator):
    env = KernelEnv(evaluator=evaluator)
    first = [env.reset(seed=s)[1]["task_id"] for s in range(8)]
    again = [env.reset(seed=s)[1]["task_id"] for s in range(8)]
    assert first == again and len(set(first)) > 1
    env.reset(seed=5)
    stream = [env.reset()[1]["task_id"] for _ in range(5)]
    env.reset(seed=5)
    assert [env.reset()[1]["task_id"] for _ in range(5)] == stream  # unseeded resets continue the seeded stream
    other = KernelEnv(evaluator=evaluator)
    assert [other.reset(seed=s)[1]["task_id"] for s in range(8)] == first  # same across instances


def test_unknown_task_ids_are_explained(env):
    with pytest.raises(ValueError, match="did you mean L1/19_ReLU"):
        env.reset(options={"task_id": "19_ReLU"})


def test_reward_options_and_early_termination(evaluator, bundled):
    env = KernelEnv(levels=(1,), evaluator=evaluator, reward="correctness", terminate_on_success=True, max_turns=5)
    env.reset(options={"task_id": SIGMOID})
    _, reward, terminated, _, _ = env.step(HACK)
    assert reward == 0.0 and not terminated
    _, reward, terminated, truncated, _ = env.step(bundled[SIGMOID].solution)
    assert (reward, terminated, truncated) == (1.0, True, False)
    custom = KernelEnv(levels=(1,), evaluator=evaluator, reward=RewardConfig("drkernel", hack_value=-1.0), max_turns=1)
    custom.reset(options={"task_id": RELU})
    _, reward, _, truncated, _ = custom.step(HACK)
    assert reward == -1.0 and truncated


def test_options_are_checked(evaluator, bundled):
    with pytest.raises(ValueError, match="max_turns"):
        KernelEnv(evaluator=evaluator, max_turns=0)
    with pytest.raises(ValueError, match="runs on 'interpreter'"):
        KernelEnv(evaluator=evaluator, backend="cuda")
    with pytest.raises(ValueError, match="no tasks of level 4"):
        KernelEnv(evaluator=evaluator, levels=(4,))
    with pytest.raises(ValueError, match="render_mode"):
        KernelEnv(evaluator=evaluator, render_mode="human")
    env = KernelEnv(tasks=[bundled[RELU], bundled[SIGMOID]], evaluator=evaluator)
    assert [t.id for t in env.tasks] == [RELU, SIGMOID] and env.size == "small"


def test_long_feedback_is_cut_to_the_space(evaluator):
    env = KernelEnv(levels=(1,), evaluator=evaluator, max_text_length=3000)
    obs, _ = env.reset(options={"task_id": RELU})
    obs, *_ = env.step("x" * 5000)  # longer than the action space: still evaluated
    assert obs in env.observation_space
