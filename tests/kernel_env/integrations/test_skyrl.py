"""SkyRL-gym: KernelEnv through skyrl_gym's registry, as SkyRL's generator drives it (make, init, step
until done), paying exactly what KernelEnv pays."""

import pytest
import skyrl_gym  # the dev extras install it: a missing library fails here, never skips
from omegaconf import DictConfig  # a skyrl-gym dependency

from kernel_env import KernelEnv
from kernel_env.integrations import skyrl

pytestmark = pytest.mark.timeout(240)
RELU = "L1/19_ReLU"
CONFIG = DictConfig({"levels": [1], "backend": "interpreter"})  # what SkyRL hands over: a DictConfig


def make(evaluator, max_turns=3, task_id=RELU):
    """As the generator does: the row's extras carry the task, and max_turns is always set."""
    return skyrl_gym.make(skyrl.ENV_ID, env_config=CONFIG, extras={"task_id": task_id, "max_turns": max_turns},
                          evaluator=evaluator)


@pytest.fixture(autouse=True, scope="module")
def registered():
    skyrl.register()


def test_registration_is_idempotent_and_make_builds_the_env(evaluator):
    skyrl.register()  # SkyRL workers may import twice
    assert skyrl.ENV_ID in skyrl_gym.registry
    env = make(evaluator)
    assert isinstance(env, skyrl.KernelSkyRLEnv) and isinstance(env, skyrl_gym.Env)
    assert env.spec.id == skyrl.ENV_ID and {t.level for t in env.env.tasks} == {1}
    env.close()


def test_honest_episode_pays_what_kernel_env_pays(evaluator, relu):
    env = make(evaluator)
    prompt, meta = env.init([{"role": "system", "content": "You write Triton."}, {"role": "user", "content": "?"}])
    assert [m["role"] for m in prompt] == ["system", "user"] and meta["task_id"] == RELU
    assert relu.program("small").strip() in prompt[1]["content"]
    out = env.step(relu.solution)

    direct = KernelEnv(levels=(1,), evaluator=evaluator)
    direct.reset(options={"task_id": RELU})
    _, expected, *_ = direct.step(relu.solution)
    direct.close()

    assert out["reward"] == expected > 0
    assert out["metadata"]["correct"] and out["metadata"]["hacks"] == [] and not out["done"]
    assert out["observations"] == [{"role": "user", "content": out["metadata"]["feedback"]}]
    assert "Your kernel is correct" in out["observations"][0]["content"]
    assert "messages" not in out["metadata"]  # SkyRL keeps its own chat history
    env.close()


def test_garbage_earns_the_failure_reward_and_the_episode_ends_at_max_turns(evaluator):
    env = make(evaluator, max_turns=2)
    env.init([{"role": "user", "content": "?"}])
    first = env.step("I don't know.")
    assert first["reward"] == 0.0 and not first["done"] and not first["metadata"]["compiled"]
    assert "no ```python code block found" in first["observations"][0]["content"]
    last = env.step("still nothing")
    assert last["reward"] == 0.0 and last["done"] and last["observations"] == []
    assert "The episode is over." in last["metadata"]["feedback"]
    assert env.get_metrics() == {"turns": 2, "best_speedup": 0.0, "correct": 0.0, "hacked": 0.0, "best_reward": 0.0}
    env.close()


def test_dataset_rows_carry_the_prompt_init_returns(evaluator):
    rows = skyrl.dataset_rows(levels=(1,), backend="interpreter")
    row = next(r for r in rows if r["task_id"] == RELU)
    assert row["env_class"] == skyrl.ENV_ID and row["extra_info"] == {"task_id": RELU, "level": 1}
    extras = {k: v for k, v in row.items() if k not in ("prompt", "env_class")}  # as SkyRL's dataset does
    env = skyrl_gym.make(row["env_class"], env_config=CONFIG, extras={**extras, "max_turns": 3}, evaluator=evaluator)
    prompt, _ = env.init(row["prompt"])
    assert prompt == row["prompt"]
    env.close()
