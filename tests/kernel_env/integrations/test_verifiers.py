"""verifiers (v1): the kernel taskset and its multi-turn env, loaded through verifiers' own loaders and
played end to end (interception, harness, trace) against a scripted local model endpoint."""

import asyncio

import pytest
import verifiers.v1 as vf  # the dev extras install it: a missing library fails here, never skips

from kernel_env import KernelEnv
from kernel_env.integrations import verifiers as kernel_vf

pytestmark = pytest.mark.timeout(300)
RELU = "L1/19_ReLU"
TASKSET = {"levels": [1], "backend": "interpreter"}


def play(evaluator, reply, max_turns, **config):
    """One episode of ReLU whose model always answers ``reply``: (trace, the requests the model saw)."""
    env = kernel_vf.load_environment(evaluator=evaluator, max_turns=max_turns, **TASKSET, **config)
    tasks = list(env.taskset.include(ids=[RELU]))

    async def run():
        async with kernel_vf.scripted_endpoint(reply) as endpoint:
            episodes = await kernel_vf.play(env, "scripted", endpoint.client, tasks)
        return episodes, endpoint.requests

    (episode,), requests = asyncio.run(run())
    assert episode.ok and episode.errors == [] and len(episode.traces) == 1
    return episode.traces[0], requests


def test_verifiers_loaders_resolve_the_taskset_env_and_harness():
    config = vf.resolve_env_config({"taskset": {"id": kernel_vf.TASKSET_ID, **TASKSET}})
    assert isinstance(config, kernel_vf.KernelEnvConfig) and config.taskset.levels == [1]
    env = vf.load_environment(config)
    assert isinstance(env, kernel_vf.KernelVerifiersEnv) and isinstance(env.taskset, kernel_vf.KernelTaskset)
    assert isinstance(env._harnesses["agent"], kernel_vf.KernelChatHarness)  # the taskset's default harness
    tasks = {t.data.id: t for t in env.taskset}
    direct = KernelEnv(levels=(1,), backend="interpreter")
    assert set(tasks) == {t.id for t in direct.tasks}
    assert tasks[RELU].data.prompt == direct.reset(options={"task_id": RELU})[0] and tasks[RELU].key == RELU


def test_honest_episode_pays_what_kernel_env_pays(evaluator, relu):
    trace, requests = play(evaluator, relu.solution, max_turns=1)

    direct = KernelEnv(levels=(1,), evaluator=evaluator, max_turns=1)
    prompt, _ = direct.reset(options={"task_id": RELU})
    _, expected, *_ = direct.step(relu.solution)
    direct.close()

    assert trace.ok and trace.reward == trace.rewards["kernel_reward"].score == expected > 0
    assert trace.metrics == {"correct": 1.0, "hacked": 0.0, "turns": 1.0, "best_speedup": direct.best_speedup}
    assert trace.info["kernel_turns"] == [{"reward": expected, "correct": True, "hacks": [], "stage": "done",
                                           "error": None}]
    assert requests == [[{"role": "user", "content": prompt}]]  # the model saw exactly KernelEnv's prompt
    assert trace.num_turns == 1 and trace.last_reply == relu.solution.strip()


def test_garbage_earns_the_failure_reward_with_feedback_until_max_turns(evaluator):
    trace, requests = play(evaluator, "I don't know.", max_turns=3)
    assert trace.rewards["kernel_reward"].score == 0.0 and trace.metrics["correct"] == 0.0
    assert trace.num_turns == 3 and len(requests) == 3  # the env ended the exchange after turn 3
    assert [m["role"] for m in requests[2]] == ["user", "assistant", "user", "assistant", "user"]
    feedback = requests[1][-1]["content"]
    assert feedback.startswith("Turn 1 of 3. Your answer could not be used: no ```python code block found")
    assert [t["stage"] for t in trace.info["kernel_turns"]] == ["parse"] * 3
    assert "The episode is over." in trace.info["final_feedback"]


def test_episode_reward_modes(evaluator, relu):
    replies = iter(["nothing yet", relu.solution])
    trace, _ = play(evaluator, lambda messages: next(replies), max_turns=2, episode_reward="last")
    rewards = [t["reward"] for t in trace.info["kernel_turns"]]
    assert rewards[0] == 0.0 < rewards[1] == trace.rewards["kernel_reward"].score
    with pytest.raises(ValueError):
        kernel_vf.env_config(episode_reward="mean")
