"""Multi-turn rollouts: G trajectories per task, up to T turns, one training sample per turn.

Works with any Gymnasium text env (observation ``str``, action ``str``, ``reset(options={"task_id"})``):
the toy env and the kernel envs alike. ``EnvPool`` holds N single envs and steps the live ones through
``kernel_env.envs.split_step.step_all``, the same path the native vector env uses: an env that splits
its step (``submit`` / ``finish_step``, as ``KernelEnv`` does) has every action of a turn in flight
before any result is awaited. Unlike the vector env there is no autoreset: a trajectory that ends
early must stay ended, not restart on a new task mid-batch.

The conversation grows with the env's feedback. When it no longer fits the context, the oldest
exchanges are dropped first (the task message always stays), then the longest message is cut in
the middle (``fit_messages``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from kernel_env.envs.split_step import SplitStepEnv, step_all

from .policies import Generation, SamplingParams


class Sampler(Protocol):
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *, seed: int | None = None,
                 batch_size: int | None = None) -> list[Generation]: ...


class ChatEncoder(Protocol):
    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]: ...


# --------------------------------------------------------------------------------------------------
# samples


@dataclass
class TurnSample:
    """One turn of one trajectory: a training row."""

    group: int  # task slot in the batch: the baseline group
    traj: int  # trajectory id, unique in the batch
    turn: int  # 0-based turn index
    task_id: str
    prompt_ids: list[int]
    response_ids: list[int]
    sampler_logprobs: list[float]  # log mu of each response token
    text: str
    reward: float
    compiled: bool | None = None  # the env built the submission (None: the env does not say)
    correct: bool | None = None
    coverage: float | None = None
    speedup: float | None = None
    hacks: list[str] = field(default_factory=list)
    timed: bool = False  # the env reports a speedup for its turns (``info`` has the key)
    finished: bool = True  # the response ended with EOS
    context_cut: bool = False  # the conversation was shortened to fit the context
    last: bool = False  # last turn of its trajectory


@dataclass
class Trajectory:
    group: int
    traj: int
    task_id: str
    turns: list[TurnSample] = field(default_factory=list)

    @property
    def reward(self) -> float:
        """The best turn's reward: what test-time selection would keep (Reinforce-Ada's positive test)."""
        return max((t.reward for t in self.turns), default=0.0)

    @property
    def total_reward(self) -> float:
        return sum(t.reward for t in self.turns)


@dataclass
class Rollout:
    trajectories: list[Trajectory]
    generate_s: float = 0.0
    env_s: float = 0.0
    generated_tokens: int = 0

    @property
    def samples(self) -> list[TurnSample]:
        return [t for traj in self.trajectories for t in traj.turns]

    def extend(self, other: Rollout) -> None:
        self.trajectories += other.trajectories
        self.generate_s += other.generate_s
        self.env_s += other.env_s
        self.generated_tokens += other.generated_tokens


# --------------------------------------------------------------------------------------------------
# envs


class EnvPool:
    """N single text envs, stepped together on a subset (the live trajectories)."""

    def __init__(self, envs: Sequence[Any]):
        self.envs = list(envs)

    @property
    def parallel(self) -> bool:
        """Whether every env splits its step, so a turn's evaluations run side by side."""
        return all(isinstance(e, SplitStepEnv) for e in self.envs)

    @classmethod
    def make(cls, env_id: str, num_envs: int, **kwargs) -> EnvPool:
        """``num_envs`` copies of a registered env. A split-step env is driven unwrapped: the wrappers
        ``make`` adds (order enforcing, the passive checker) guard what the pool already does, reset
        before step, and would hide its ``submit``. Kernel envs share one evaluator pool because they
        ask for the same one."""
        import gymnasium as gym

        import_env_module(env_id)
        envs = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
        return cls([e.unwrapped if isinstance(e.unwrapped, SplitStepEnv) else e for e in envs])

    def __len__(self) -> int:
        return len(self.envs)

    def task_ids(self) -> list[str] | None:
        """The env's task list, when it exposes one (``task_ids``, or ``tasks`` with ``.id``)."""
        env = self.envs[0].unwrapped
        if hasattr(env, "task_ids"):
            return list(env.task_ids)
        if hasattr(env, "tasks"):
            return [t.id for t in env.tasks]
        return None

    def reset(self, index: int, *, task_id: str | None, seed: int | None) -> tuple[str, dict]:
        options = {"task_id": task_id} if task_id is not None else None
        return self.envs[index].reset(seed=seed, options=options)

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[tuple]:
        """Step envs ``indices`` with ``actions``; all evaluations in flight at once when possible."""
        return step_all([self.envs[i] for i in indices], actions)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def import_env_module(env_id: str) -> None:
    """Gymnasium has no plugin discovery: import the package that registers ``env_id``'s namespace."""
    import importlib

    import gymnasium as gym

    if env_id in gym.registry:
        return
    namespace = env_id.split("/")[0] if "/" in env_id else None
    module = {"agents": "agents.toy_env"}.get(namespace, namespace)
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            pass


# --------------------------------------------------------------------------------------------------
# context


CUT_MARKER = "\n[... cut to fit the context ...]\n"


def _cut_middle(text: str, keep: int) -> str:
    """``text`` shortened to ``keep`` characters, head and tail kept around a marker."""
    marker = CUT_MARKER
    if keep <= len(marker) + 2:
        return text[: max(keep, 0)]
    half = (keep - len(marker)) // 2
    return text[:half] + marker + text[len(text) - half :]


def fit_messages(
    messages: Sequence[dict[str, str]], count: Callable[[list[dict[str, str]]], int], limit: int
) -> tuple[list[dict[str, str]], bool]:
    """Shorten a conversation to at most ``limit`` tokens (``count`` counts a message list).

    1. Drop the oldest (assistant, feedback) exchanges; the task message (and a system message before
       it) and the latest exchange stay.
    2. Still too long: cut the middle of the longest message, repeatedly, until it fits.
    Returns (messages, whether anything was cut).
    """
    msgs = [dict(m) for m in messages]
    n = count(msgs)
    if n <= limit:
        return msgs, False
    head = 2 if msgs and msgs[0]["role"] == "system" else 1
    while len(msgs) > head + 2 and n > limit:
        del msgs[head : head + 2]
        n = count(msgs)
    for _ in range(50):
        if n <= limit:
            break
        i = max(range(len(msgs)), key=lambda k: len(msgs[k]["content"]))
        text = msgs[i]["content"]
        chars_per_token = max(sum(len(m["content"]) for m in msgs) / max(n, 1), 1.0)
        cut = math.ceil((n - limit) * chars_per_token) + 4  # the marker sits inside the kept length
        if len(text) <= 1:
            break
        msgs[i]["content"] = _cut_middle(text, max(len(text) - cut, 0))
        n = count(msgs)
    return msgs, True


# --------------------------------------------------------------------------------------------------
# collection


def collect(
    policy: ChatEncoder,
    pool: EnvPool,
    task_ids: Sequence[str | None],
    *,
    group_size: int,
    max_turns: int,
    params: SamplingParams,
    max_prompt_tokens: int,
    sampler: Sampler | None = None,
    seed: int = 0,
    system_prompt: str | None = None,
    first_group: int = 0,
    first_traj: int = 0,
    generate_batch_size: int | None = None,
    on_turn: Callable[[list[TurnSample]], None] | None = None,
) -> Rollout:
    """Run ``group_size`` trajectories for every task, up to ``max_turns`` turns each.

    Trajectories of task ``task_ids[k]`` get group id ``first_group + k``. ``task_id=None`` lets the
    env choose (all G copies are reset with the same seed, so a seeded env picks one task per group).
    Waves of ``len(pool)`` trajectories run one after another when the pool is smaller than the batch;
    ``generate_batch_size`` caps the prompts per generate call (memory: the KV cache grows with it).
    ``on_turn`` sees each turn's new samples as they come (progress reports).
    """
    sampler = sampler or policy
    slots = [(first_group + k, tid) for k, tid in enumerate(task_ids) for _ in range(group_size)]
    out = Rollout(trajectories=[])
    for start in range(0, len(slots), len(pool)):
        wave = slots[start : start + len(pool)]
        out.extend(
            _collect_wave(policy, sampler, pool, wave, first_traj + start, max_turns, params, max_prompt_tokens,
                          seed, system_prompt, generate_batch_size, on_turn)
        )
    return out


def _collect_wave(policy, sampler, pool, wave, first_traj, max_turns, params, max_prompt_tokens, seed,
                  system_prompt, generate_batch_size, on_turn) -> Rollout:
    out = Rollout(trajectories=[])
    conversations: list[list[dict[str, str]]] = []
    for k, (group, task_id) in enumerate(wave):
        obs, info = pool.reset(k, task_id=task_id, seed=seed + (group if task_id is None else first_traj + k))
        head = [{"role": "system", "content": system_prompt}] if system_prompt else []
        conversations.append(head + [{"role": "user", "content": obs}])
        out.trajectories.append(Trajectory(group=group, traj=first_traj + k, task_id=info.get("task_id", task_id)))
    done = [False] * len(wave)

    def count(msgs):
        return len(policy.encode_chat(msgs))

    for turn in range(max_turns):
        live = [k for k in range(len(wave)) if not done[k]]
        if not live:
            break
        fitted = [fit_messages(conversations[k], count, max_prompt_tokens) for k in live]
        prompts = [policy.encode_chat(msgs) for msgs, _ in fitted]
        t0 = time.perf_counter()
        gens = sampler.generate(prompts, params, batch_size=generate_batch_size)
        t1 = time.perf_counter()
        results = pool.step(live, [g.text for g in gens])
        out.env_s += time.perf_counter() - t1
        out.generate_s += t1 - t0
        for k, prompt, (_, cut), gen, (obs, reward, terminated, truncated, info) in zip(
            live, prompts, fitted, gens, results
        ):
            out.generated_tokens += len(gen.token_ids)
            traj = out.trajectories[k]
            ended = bool(terminated or truncated) or turn == max_turns - 1
            traj.turns.append(
                TurnSample(
                    group=traj.group,
                    traj=traj.traj,
                    turn=turn,
                    task_id=traj.task_id,
                    prompt_ids=prompt,
                    response_ids=gen.token_ids,
                    sampler_logprobs=gen.logprobs,
                    text=gen.text,
                    reward=float(reward),
                    compiled=_opt_bool(info.get("compiled")),
                    correct=_opt_bool(info.get("correct")),
                    coverage=_opt_float(info.get("coverage")),
                    speedup=_opt_float(info.get("paid_speedup", info.get("speedup"))),  # what the reward paid
                    hacks=list(info.get("hacks") or []),
                    timed="speedup" in info,
                    finished=gen.finished,
                    context_cut=cut,
                    last=ended,
                )
            )
            conversations[k] += [{"role": "assistant", "content": gen.text}, {"role": "user", "content": obs}]
            done[k] = ended
        if on_turn:
            on_turn([out.trajectories[k].turns[-1] for k in live])
    return out


def _opt_float(x) -> float | None:
    return None if x is None else float(x)


def _opt_bool(x) -> bool | None:
    return None if x is None else bool(x)


# --------------------------------------------------------------------------------------------------
# tensors for the algorithm library


def pad_rows(rows: Sequence[Sequence[float]], value: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """Left-aligned [N, max_len] tensor from ragged rows."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.tensor(list(r), dtype=dtype)
    return out


def sample_tensors(samples: Sequence[TurnSample]) -> dict[str, torch.Tensor]:
    """Row tensors: rewards, group / traj / turn ids, correctness, coverage (NaN when not measured)."""
    return {
        "rewards": torch.tensor([s.reward for s in samples], dtype=torch.float32),
        "group_ids": torch.tensor([s.group for s in samples], dtype=torch.long),
        "traj_ids": torch.tensor([s.traj for s in samples], dtype=torch.long),
        "turns": torch.tensor([s.turn for s in samples], dtype=torch.long),
        "correct": torch.tensor([bool(s.correct) for s in samples], dtype=torch.bool),
        "coverage": torch.tensor([math.nan if s.coverage is None else s.coverage for s in samples]),
    }
