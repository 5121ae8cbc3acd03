"""A toy multi-turn text environment with a cheap, dense reward: say the secret word.

Each task has a secret target string. The prompt names the task but not the word, so the policy has
to *learn* each task's answer from reward alone. The answer is the reply's first word (the way the
kernel env reads only the code block of a reply); it earns partial credit by character match
(``difflib`` ratio: 2 * matched characters / total length, 1.0 only for the exact word), and the
feedback for the next turn says how close it was. Same interface as ``kernel_env``'s envs
(observation and action are ``str``; ``info`` carries ``task_id``, ``turn``, ``correct``, ``hacks`` and
``messages``; it has no speedup or coverage to report), so the rollout and trainer code run
unchanged on both, and learning can be shown in seconds on a CPU.

Like ``KernelEnv``, episodes run all ``max_turns`` turns by default: with per-turn rewards summed
over turns (gamma = 1), ending at the first exact answer would pay a solver less than a trajectory
that keeps collecting partial credit. ``terminate_on_success=True`` is there for test-time use.

Registered (idempotently) as ``agents/TargetString-v0`` when this module is imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym

ENV_ID = "agents/TargetString-v0"
DEFAULT_TARGETS = ("cat", "dog", "sun", "tl")


def answer_of(reply: str) -> str:
    """The first whitespace-separated word of a reply ("" for a blank reply)."""
    words = reply.split()
    return words[0] if words else ""


def char_score(answer: str, target: str) -> float:
    """2 * matching characters / (len(answer) + len(target)), in [0, 1]; 1 only for an exact match."""
    if not answer and not target:
        return 1.0
    return difflib.SequenceMatcher(None, answer, target, autojunk=False).ratio()


class TargetStringEnv(gym.Env[str, str]):
    """Say task ``i``'s secret word; partial credit by character match; feedback after every turn.

    Args:
        targets: one secret word per task (task ids ``word-0``, ``word-1``, ...).
        max_turns: turns per episode (the last returns ``truncated=True``).
        terminate_on_success: end the episode at the first exact answer.
        show_target: put the word in the prompt (a copying task) instead of leaving it to be learnt.
    """

    metadata: ClassVar[dict] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        targets: Sequence[str] = DEFAULT_TARGETS,
        max_turns: int = 3,
        terminate_on_success: bool = False,
        show_target: bool = False,
        render_mode: str | None = None,
    ):
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.targets = list(targets)
        self.max_turns = int(max_turns)
        self.terminate_on_success = terminate_on_success
        self.show_target = show_target
        self.render_mode = render_mode
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self.task_index = 0
        self.turn = 0
        self.messages: list[dict[str, str]] = []
        self._done = True

    @property
    def task_ids(self) -> list[str]:
        return [f"word-{i}" for i in range(len(self.targets))]

    def prompt(self, index: int) -> str:
        if self.show_target:
            return f"Say {self.targets[index]}"
        return f"Say the secret word {index}."

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            self.task_index = int(self.np_random.integers(len(self.targets)))
        elif task_id in self.task_ids:
            self.task_index = self.task_ids.index(task_id)
        else:
            raise ValueError(f"no task {task_id!r}; tasks are {self.task_ids}")
        self.turn, self._done = 0, False
        obs = self.prompt(self.task_index)
        self.messages = [{"role": "user", "content": obs}]
        return obs, {"task_id": self.task_ids[self.task_index], "turn": 0, "messages": list(self.messages)}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._done:
            raise gym.error.ResetNeeded("call reset() before step()")
        target = self.targets[self.task_index]
        answer = answer_of(action)
        score = char_score(answer, target)
        correct = answer == target
        self.turn += 1
        terminated = bool(self.terminate_on_success and correct)
        truncated = bool(self.turn >= self.max_turns and not terminated)
        self._done = terminated or truncated
        in_place = sum(a == b for a, b in zip(answer, target))
        feedback = "Correct." if correct else f"Score {score:.2f}, {in_place}/{len(target)} in place."
        if not self._done:
            feedback += " Try again."
        self.messages += [{"role": "assistant", "content": action}, {"role": "user", "content": feedback}]
        info = {
            "task_id": self.task_ids[self.task_index],
            "turn": self.turn,
            "correct": correct,
            "score": score,
            "answer": answer,
            "hacks": [],
            "messages": list(self.messages),
        }
        return feedback, float(score), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages)


class AnyText(gym.Space[str]):
    """Any ``str`` up to ``max_length`` (Gymnasium's ``Text`` admits only a fixed charset)."""

    def __init__(self, max_length: int = 10_000, seed: int | None = None):
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        letters = "abcdefghijklmnopqrstuvwxyz"
        return "".join(letters[i] for i in self.np_random.integers(len(letters), size=int(self.np_random.integers(1, 6))))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length


def register_toy_env() -> None:
    """Register ``agents/TargetString-v0`` with Gymnasium once (safe to call again)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="agents.toy_env:TargetStringEnv")


register_toy_env()
