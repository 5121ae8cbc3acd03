"""Envs pickle at any point of an episode (Ray, multiprocessing and checkpointing libraries need it):
the pool handle re-attaches on unpickle."""

import copy
import pickle

from spawn_targets import finish_pickled_episode
from test_registration import in_fresh_process

from kernel_env import KernelEnv
from kernel_env.evaluator import Evaluator

RELU = "L1/19_ReLU"


def test_a_stepped_env_pickles_and_goes_on_with_the_same_pool(evaluator, bundled):
    env = KernelEnv(levels=(1,), evaluator=evaluator, max_turns=2, tolerance="kernelbench")
    env.reset(seed=0, options={"task_id": RELU})
    env.step("not code")
    copy_ = pickle.loads(pickle.dumps(env))
    assert copy_.turn == 1 and copy_.messages == env.messages and copy_.task.id == RELU
    assert copy_._given is evaluator and copy_._evaluator is None  # same pool in this process, not yet held
    _, reward, _, truncated, info = copy_.step(bundled[RELU].solution)
    assert copy_.evaluator is evaluator and info["correct"] and truncated and reward > 1.0
    assert info["tolerance"]["preset"] == "kernelbench"
    holders = evaluator._holders
    copy_.close()
    env.close()
    assert evaluator._holders == holders - 2 and not evaluator.closed  # each env gave back its own hold


def test_a_deep_copy_takes_its_own_hold(evaluator):
    env = KernelEnv(levels=(1,), evaluator=evaluator)
    env.reset(seed=0)
    env.evaluator  # noqa: B018 - take the hold
    twin = copy.deepcopy(env)
    before = evaluator._holders
    twin.evaluator  # noqa: B018
    assert evaluator._holders == before + 1
    twin.close()
    env.close()


def test_a_pickled_pool_is_a_handle_not_a_copy():
    with Evaluator(backend="interpreter", workers=1) as pool:
        assert pickle.loads(pickle.dumps(pool)) is pool
    from kernel_env.evaluator import default_evaluator

    assert pickle.loads(pickle.dumps(pool)) is default_evaluator("interpreter")  # closed: this process's default


def test_an_env_unpickled_in_another_process_finishes_its_episode_there(evaluator, bundled):
    env = KernelEnv(levels=(1,), evaluator=evaluator, max_turns=2, tolerance="kernelbench")
    env.reset(seed=0, options={"task_id": RELU})
    env.step("not code")
    out = in_fresh_process(finish_pickled_episode, pickle.dumps(env), bundled[RELU].solution)
    env.close()
    assert out["turn"] == 2 and out["truncated"] and out["correct"] and out["reward"] > 1.0
    assert out["tolerance"] == "kernelbench"  # the given pool's config travelled with the env


def test_a_stepped_vector_env_pickles(evaluator):
    from kernel_env import KernelVectorEnv

    venv = KernelVectorEnv(num_envs=2, levels=(1,), evaluator=evaluator, max_turns=2)
    venv.reset(seed=0)
    venv.step(["not code", "nor this"])
    twin = pickle.loads(pickle.dumps(venv))
    assert [e.turn for e in twin.envs] == [1, 1] and twin.evaluator is evaluator
    twin.close()
    venv.close()
