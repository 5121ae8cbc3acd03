"""The native vector env (all evaluations in flight at once, SAME_STEP autoreset) and AsyncVectorEnv."""

import threading
from concurrent.futures import Future
from functools import partial

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from kernel_env import EvalConfig, EvalResult, KernelEnv, KernelVectorEnv, TextSpace
from kernel_env.evaluator import BaseEvaluator

RELU = "L1/19_ReLU"
SIGMOID = "L1/8_Sigmoid"


class GatedEvaluator(BaseEvaluator):
    """Resolves its futures only once ``n`` evaluations are pending: a vector env that waited for one
    result before submitting the next would stall here (a timer frees it after a while, and says so)."""

    backend = "interpreter"
    config = EvalConfig()

    def __init__(self, n: int):
        super().__init__()
        self.n, self.pending, self.in_flight, self.timed_out = n, [], [], False
        self.lock = threading.RLock()
        self.timer = None

    def submit(self, task, response, size=None, config=None) -> Future:
        future = Future()
        with self.lock:
            self.pending.append((future, task))
            if len(self.pending) == 1:
                self.timer = threading.Timer(30.0, self._release, args=(True,))
                self.timer.daemon = True
                self.timer.start()
            if len(self.pending) == self.n:
                self._release(False)
        return future

    def _shutdown(self) -> None:
        pass

    def _release(self, by_timer: bool) -> None:
        with self.lock:
            self.timer.cancel()
            if not self.pending:
                return
            self.timed_out |= by_timer
            self.in_flight.append(len(self.pending))
            for future, task in self.pending:
                future.set_result(EvalResult(task_id=task.id, stage="parse", error="no code", feedback="No code."))
            self.pending = []


def test_step_submits_every_action_before_waiting():
    gate = GatedEvaluator(n=4)
    envs = KernelVectorEnv(num_envs=4, levels=(1,), evaluator=gate, max_turns=2)
    envs.reset(seed=0)
    _, rewards, *_ = envs.step(["a", "b", "c", "d"])
    assert gate.in_flight == [4] and not gate.timed_out
    assert rewards.tolist() == [0.0] * 4


def test_make_vec_uses_the_native_vector_env(evaluator):
    envs = gymnasium.make_vec("kernel_env/KernelBench-L1-v0", num_envs=3, evaluator=evaluator)
    assert isinstance(envs, KernelVectorEnv) and envs.num_envs == 3
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.single_observation_space == TextSpace() and len(envs.observation_space.spaces) == 3
    assert {t.level for t in envs.tasks} == {1}
    assert all(a is b for env in envs.envs for a, b in zip(env.tasks, envs.tasks))  # files read once
    obs, infos = envs.reset(seed=0)
    assert isinstance(obs, tuple) and len(obs) == 3 and obs in envs.observation_space
    assert infos["turn"].tolist() == [0, 0, 0] and infos["_task_id"].all()
    envs.close()


def test_vector_reset_seeds_each_copy_like_a_single_env(evaluator):
    envs = KernelVectorEnv(num_envs=3, evaluator=evaluator)
    _, infos = envs.reset(seed=11)
    single = KernelEnv(evaluator=evaluator)
    assert list(infos["task_id"]) == [single.reset(seed=11 + i)[1]["task_id"] for i in range(3)]
    _, again = envs.reset(seed=11)
    assert list(again["task_id"]) == list(infos["task_id"])
    _, group = envs.reset(options={"task_id": RELU})
    assert list(group["task_id"]) == [RELU] * 3
    _, chosen = envs.reset(options={"task_ids": [RELU, SIGMOID, RELU]})
    assert list(chosen["task_id"]) == [RELU, SIGMOID, RELU]
    with pytest.raises(ValueError, match="needs 3 ids"):
        envs.reset(options={"task_ids": [RELU]})


def test_parallel_evaluation_and_same_step_autoreset(evaluator, bundled):
    envs = gymnasium.make_vec("kernel_env/KernelBench-L1-v0", num_envs=2, evaluator=evaluator, max_turns=2)
    envs.reset(seed=0, options={"task_ids": [RELU, SIGMOID]})
    replies = [bundled[RELU].solution, bundled[SIGMOID].solution]

    obs, rewards, terminated, truncated, infos = envs.step(replies)
    assert (rewards > 1.0).all() and not truncated.any() and not terminated.any()
    assert infos["correct"].all() and list(infos["task_id"]) == [RELU, SIGMOID]
    assert all(o.startswith("Turn 1 of 2. Your kernel is correct.") for o in obs)
    assert "final_obs" not in infos

    obs, rewards, terminated, truncated, infos = envs.step(["no code here", replies[1]])
    assert truncated.tolist() == [True, True] and rewards[0] == 0.0 and rewards[1] > 1.0
    assert infos["_final_obs"].tolist() == [True, True]
    assert infos["final_obs"][0].startswith("Turn 2 of 2. Your answer could not be used")
    assert list(infos["final_info"]["task_id"]) == [RELU, SIGMOID]
    assert infos["final_info"]["correct"].tolist() == [False, True]
    assert [len(m) for m in infos["final_info"]["messages"]] == [5, 5]
    # the returned observations already start the next episodes
    assert all(o.startswith("Here is a PyTorch program") for o in obs) and infos["turn"].tolist() == [0, 0]
    obs, rewards, *_ = envs.step(["x", "y"])  # every action counts: no wasted step after an episode
    assert rewards.tolist() == [0.0, 0.0]
    envs.close()


def test_async_vector_env_with_text_observations(bundled):
    """AsyncVectorEnv needs shared_memory=False for text; each subprocess builds its own 1-worker pool."""
    make = partial(gymnasium.make, "kernel_env:kernel_env/KernelBench-L1-v0", backend="interpreter", workers=1,
                   max_turns=1)
    envs = AsyncVectorEnv([make, make], shared_memory=False, context="spawn")
    try:
        obs, infos = envs.reset(seed=0, options={"task_id": RELU})
        expected, _ = KernelEnv(tasks=[bundled[RELU]], backend="interpreter", max_turns=1).reset(options={"task_id": RELU})
        assert obs == (expected, expected)
        obs, rewards, _, truncated, infos = envs.step((bundled[RELU].solution, "no code"))
        assert rewards[0] > 1.0 and rewards[1] == 0.0 and truncated.tolist() == [True, True]
        assert obs[0].startswith("Turn 1 of 1. Your kernel is correct.") and "could not be used" in obs[1]
        assert isinstance(obs, tuple) and all(isinstance(o, str) for o in obs)
        assert np.asarray(infos["correct"]).tolist() == [True, False]
    finally:
        envs.close()


def test_async_vector_env_refuses_shared_memory_for_text():
    """With the default shared_memory=True Gymnasium cannot lay text out in shared memory: it must
    fail loudly (as it does for TextSpace), never return garbage observations."""
    make = partial(gymnasium.make, "kernel_env/KernelBench-L1-v0", backend="interpreter")
    with pytest.raises(ValueError, match="shared_memory=False"):
        AsyncVectorEnv([make, make], context="spawn")
