"""The toy env, the env pool, context fitting and multi-turn collection."""

import threading
from concurrent.futures import Future

import gymnasium as gym
import pytest
from agents_helpers import ScriptedSampler
from gymnasium.utils.env_checker import check_env

from agents.policies import SamplingParams
from agents.rollout import CUT_MARKER, EnvPool, collect, fit_messages
from agents.toy_env import ENV_ID, TargetStringEnv, answer_of, char_score

PARAMS = SamplingParams(max_new_tokens=6)


# -- toy env -----------------------------------------------------------------------------------------


def test_char_score_gives_partial_credit():
    assert char_score("cat", "cat") == 1.0
    assert char_score("xyz", "cat") == 0.0
    assert 0 < char_score("cart", "cat") < 1 and char_score("ca", "cat") > char_score("c", "cat")
    assert answer_of("  cat is it\n") == "cat" and answer_of("   ") == ""


def test_toy_env_is_a_gymnasium_text_env():
    env = gym.make(ENV_ID, max_turns=2)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(options={"task_id": "word-1"})
    assert obs == "Say the secret word 1." and info["task_id"] == "word-1"
    obs, reward, terminated, truncated, info = env.step("dig up")
    assert reward == pytest.approx(char_score("dig", "dog")) and not terminated and not truncated
    assert obs.startswith("Score 0.67, 2/3 in place.") and info["correct"] is False and info["hacks"] == []
    _, reward, terminated, truncated, info = env.step("dog")
    assert reward == 1.0 and info["correct"] and truncated and not terminated  # runs all turns by default
    assert [m["role"] for m in info["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    with pytest.raises(ValueError, match="no task"):
        env.reset(options={"task_id": "word-9"})


def test_toy_env_can_stop_at_the_first_exact_answer():
    env = TargetStringEnv(max_turns=3, terminate_on_success=True)
    env.reset(options={"task_id": "word-0"})
    _, _, terminated, truncated, _ = env.step("cat")
    assert terminated and not truncated


# -- context -----------------------------------------------------------------------------------------


def test_fit_messages_keeps_the_task_and_drops_the_oldest_turns_first(tiny):
    def count(m):
        return len(tiny.encode_chat(m))

    task = {"role": "user", "content": "TASK " * 20}
    msgs = [task, {"role": "assistant", "content": "a1" * 30}, {"role": "user", "content": "f1" * 30},
            {"role": "assistant", "content": "a2"}, {"role": "user", "content": "f2"}]
    same, cut = fit_messages(msgs, count, 10_000)
    assert same == msgs and not cut
    fitted, cut = fit_messages(msgs, count, count([task] + msgs[3:]) + 5)
    assert cut and fitted == [task] + msgs[3:]
    tight = count([task] + msgs[3:]) - 40  # the remaining exchange does not fit: cut the longest message
    fitted, cut = fit_messages(msgs, count, tight)
    assert cut and count(fitted) <= tight and count(fitted) >= tight - 20
    assert CUT_MARKER in fitted[0]["content"] and fitted[0]["content"].startswith("TASK")
    assert fitted[1:] == msgs[3:]


# -- pool and collection -----------------------------------------------------------------------------


def test_collect_runs_groups_of_multi_turn_trajectories(tiny):
    pool = EnvPool.make(ENV_ID, 6, max_turns=2)
    try:
        rollout = collect(tiny, pool, ["word-0", "word-2"], group_size=3, max_turns=2, params=PARAMS,
                          max_prompt_tokens=500, seed=1)
    finally:
        pool.close()
    samples = rollout.samples
    assert len(rollout.trajectories) == 6 and len(samples) == 12
    assert sorted({(s.group, s.task_id) for s in samples}) == [(0, "word-0"), (1, "word-2")]
    assert sorted({s.traj for s in samples}) == list(range(6))
    assert sorted(s.turn for s in samples) == [0] * 6 + [1] * 6
    assert all(s.last == (s.turn == 1) for s in samples)
    assert all(len(s.response_ids) == len(s.sampler_logprobs) > 0 for s in samples)
    assert rollout.generated_tokens == sum(len(s.response_ids) for s in samples)
    for traj in rollout.trajectories:  # the second prompt holds the first answer and the env's feedback
        first, second = traj.turns
        text = tiny.tokenizer.decode(second.prompt_ids)
        assert second.prompt_ids[: len(first.prompt_ids) - 1] == first.prompt_ids[:-1]
        assert "Score" in text and first.text in text
        assert second.reward == pytest.approx(char_score(answer_of(second.text), ["cat", "dog", "sun", "tl"][
            int(traj.task_id[-1])]))


def test_collect_stops_a_trajectory_when_the_env_ends_it(tiny):
    """The second copy of each group answers right at once and stops; the others use every turn."""
    pool = EnvPool([TargetStringEnv(max_turns=3, terminate_on_success=True) for _ in range(4)])
    right = ScriptedSampler(tiny, lambda prompt, k: "cat" if prompt.count("<|assistant|>") == 1 and k % 2 else "dog")
    rollout = collect(tiny, pool, ["word-0"], group_size=4, max_turns=3, params=PARAMS, max_prompt_tokens=500,
                      sampler=right)
    lengths = [len(t.turns) for t in rollout.trajectories]
    assert lengths == [3, 1, 3, 1]
    assert [t.turns[-1].last for t in rollout.trajectories] == [True] * 4
    assert rollout.trajectories[1].turns[0].correct and rollout.trajectories[1].reward == 1.0


def test_collect_runs_in_waves_when_the_pool_is_small(tiny):
    pool = EnvPool([TargetStringEnv(max_turns=1) for _ in range(2)])
    rollout = collect(tiny, pool, ["word-0", "word-1", "word-3"], group_size=2, max_turns=1, params=PARAMS,
                      max_prompt_tokens=500, first_traj=10)
    assert [t.traj for t in rollout.trajectories] == list(range(10, 16))
    assert [t.task_id for t in rollout.trajectories] == ["word-0"] * 2 + ["word-1"] * 2 + ["word-3"] * 2


def test_collect_cuts_long_conversations_to_the_context(tiny):
    pool = EnvPool([TargetStringEnv(targets=["x" * 5], max_turns=2, show_target=True) for _ in range(2)])
    long_answer = ScriptedSampler(tiny, lambda prompt, k: "word " * 40)
    rollout = collect(tiny, pool, ["word-0"], group_size=2, max_turns=2, params=PARAMS, max_prompt_tokens=60,
                      sampler=long_answer)
    second = [s for s in rollout.samples if s.turn == 1]
    assert all(s.context_cut and len(s.prompt_ids) <= 60 for s in second)
    assert all(not s.context_cut for s in rollout.samples if s.turn == 0)


class SplitStepEnv(TargetStringEnv):
    """A toy env that evaluates like KernelEnv: ``submit`` returns a Future, ``finish_step`` uses it.
    Futures resolve only once every env of the batch has submitted."""

    def __init__(self, gate, **kw):
        super().__init__(**kw)
        self.gate = gate

    def submit(self, action):
        future = Future()
        self.gate.add(future)
        return future

    def finish_step(self, action, result):
        assert result == "evaluated"
        return self.step(action)


class Gate:
    def __init__(self, n):
        self.n, self.pending, self.batches, self.lock = n, [], [], threading.Lock()

    def add(self, future):
        with self.lock:
            self.pending.append(future)
            if len(self.pending) == self.n:
                self.batches.append(len(self.pending))
                for f in self.pending:
                    f.set_result("evaluated")
                self.pending = []


def test_pool_submits_every_action_before_waiting(tiny):
    gate = Gate(4)
    pool = EnvPool([SplitStepEnv(gate, max_turns=2) for _ in range(4)])
    assert pool.parallel
    rollout = collect(tiny, pool, ["word-0", "word-1"], group_size=2, max_turns=2, params=PARAMS,
                      max_prompt_tokens=500)
    assert gate.batches == [4, 4] and len(rollout.samples) == 8
