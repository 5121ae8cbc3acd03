"""GEM: KernelEnv as a gem.Env made through GEM's registry; the task is picked by task_id or by the
seed (GEM's reset takes no options), and the rewards are exactly KernelEnv's."""

import gem  # the dev extras install it: a missing library fails here, never skips
import pytest
from gem.envs.registration import ENV_REGISTRY
from gem.wrappers.observation_wrapper import ObservationWrapper

from kernel_env import KernelEnv
from kernel_env.integrations import gem as kernel_gem

pytestmark = pytest.mark.timeout(240)
RELU = "L1/19_ReLU"
L1 = "kernel_env:KernelBench-L1-v0"


@pytest.fixture(autouse=True, scope="module")
def registered():
    kernel_gem.register()


def test_every_id_is_registered_once_and_serves_its_levels(evaluator):
    kernel_gem.register()  # again: gem.register itself would refuse a duplicate
    assert set(kernel_gem.ENV_IDS) <= set(ENV_REGISTRY)
    levels = {}
    for env_id in kernel_gem.ENV_IDS:
        env = gem.make(env_id, evaluator=evaluator)
        assert isinstance(env, kernel_gem.KernelGemEnv) and isinstance(env, gem.Env) and env.env_id == env_id
        levels[env_id] = {t.level for t in env.env.tasks}
        env.close()
    assert levels[L1] == {1} and levels["kernel_env:KernelBench-v0"] == {1, 2, 3}
    assert levels["kernel_env:KernelBench-Backward-v0"] == {1, 2}


def test_honest_episode_pays_what_kernel_env_pays(evaluator, relu):
    env = gem.make(L1, evaluator=evaluator, task_id=RELU)
    obs, info = env.reset(seed=123)  # task_id wins over the seed
    assert info["task_id"] == RELU and relu.program("small").strip() in obs
    obs, reward, terminated, truncated, info = env.step(relu.solution)

    direct = KernelEnv(levels=(1,), evaluator=evaluator)
    direct.reset(options={"task_id": RELU})
    _, expected, *_ = direct.step(relu.solution)
    direct.close()

    assert reward == expected > 0 and info["correct"] and info["hacks"] == []
    assert (terminated, truncated) == (False, False) and obs.startswith("Turn 1 of 3. Your kernel is correct.")
    env.close()


def test_garbage_earns_the_failure_reward_and_the_episode_truncates_at_max_turns(evaluator):
    env = ObservationWrapper(gem.make(L1, evaluator=evaluator, task_id=RELU, max_turns=2),
                             include_action=True, include_chat_template=False)  # GEM's "concat_with_action"
    prompt, _ = env.reset()
    obs, reward, terminated, truncated, info = env.step("I don't know.")
    assert reward == 0.0 and not info["compiled"] and (terminated, truncated) == (False, False)
    assert obs.startswith(prompt) and "I don't know." in obs and "no ```python code block found" in obs
    obs, reward, terminated, truncated, info = env.step("still nothing")
    assert reward == 0.0 and (terminated, truncated) == (False, True) and "The episode is over." in obs
    assert info["turn"] == 2 and len(info["messages"]) == 5
    env.close()


def test_without_task_id_the_seed_picks_the_task(evaluator):
    env = gem.make(L1, evaluator=evaluator)
    first = [env.reset(seed=s)[1]["task_id"] for s in range(6)]
    assert [env.reset(seed=s)[1]["task_id"] for s in range(6)] == first and len(set(first)) > 1
    seeded = gem.make(L1, evaluator=evaluator, seed=4)  # the constructor's seed seeds the first reset
    assert seeded.reset()[1]["task_id"] == first[4]
    assert env.spawn(task_id=RELU).reset()[1]["task_id"] == RELU
    env.reset(seed=0)
    env.step("not code")
    twin = env.spawn(same_state=True)  # the episode so far: same task, same turn, same transcript
    assert (twin.env.task.id, twin.env.turn, twin.env.messages) == (env.env.task.id, 1, env.env.messages)
    twin.close()
    assert isinstance(env.sample_random_action(), str)


def test_make_vec_gives_each_env_its_own_seed(evaluator):
    vec = gem.make_vec([L1, L1], evaluator=evaluator, max_turns=1, seed=0)
    _, infos = vec.reset()
    single = [gem.make(L1, evaluator=evaluator, seed=s).reset()[1]["task_id"] for s in (0, 1)]
    assert [i["task_id"] for i in infos] == single
    _, rewards, terminated, truncated, infos = vec.step(["nope", "nope"])
    assert list(rewards) == [0.0, 0.0] and list(truncated) == [True, True] and not any(terminated)
