"""``KernelEnv``: a multi-turn Gymnasium environment where the agent writes Triton kernels.

An episode is one task. ``reset`` returns the first user message (the reference PyTorch program and
the instructions); each ``step(text)`` evaluates the reply on the shared evaluator pool and returns
the next user message (the evaluator's feedback), the turn's reward, and the full ``EvalResult`` in
``info``. Any text is a valid action: unusable text earns the failure reward and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.error import ResetNeeded

from tasks.task import declares_backward

from ..config import EvalConfig
from ..evaluator import POOLS, BaseEvaluator, default_size, require_local
from ..scoring.result import EvalResult
from ..scoring.rewards import RewardConfig, RewardFn, chosen_speedup
from .prompts import TRUNCATED, task_prompt, transcript, turn_message
from .spaces import TextSpace


class KernelEnv(gym.Env[str, str]):
    """Multi-turn kernel writing on one task per episode.

    Args:
        tasks: a suite name (``"bundled"``), a path (folder, KernelBench checkout, ``.jsonl``/``.parquet``),
            ``"hf:DATASET"``, or a list of ``tasks.Task``.
        levels: keep only these KernelBench levels (the registered ids set this).
        backend: ``"auto"``, ``"cuda"`` or ``"interpreter"``; taken from ``evaluator`` when one is given.
        size: task size preset; default ``"full"`` on CUDA, ``"small"`` on the interpreter.
        max_turns: turns per episode; the last one returns ``truncated=True``.
        reward: a preset name (see ``kernel_env.scoring.rewards``), a ``RewardConfig`` or a callable(EvalResult) -> float.
        evaluator: an ``Evaluator`` (or ``RayEvaluator``) to use; the env holds it while open and never
            closes it. By default the process-wide pool of this backend, taken at the first step.
        workers: instead of the default pool, a pool of this many workers, shared with the other envs of
            this process that ask for the same number and closed with the last of them.
        config: ``EvalConfig`` for every evaluation; default: the evaluator's.
        dtype: run every task at this precision (``"fp32"``, ``"bf16"``, ``"fp16"``): sets ``config.dtype``.
        tolerance: the tolerance preset outputs are judged by (``"drkernel"``, ``"kernelbench"``): sets
            ``config.tolerance``.
        terminate_on_success: end the episode (``terminated=True``) at the first correct, clean turn.
            Off by default: later turns can still make a correct kernel faster.
        max_text_length: bound of the observation and action spaces; longer feedback is cut.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the transcript).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        tasks: str | Sequence = "bundled",
        levels: Sequence[int] | None = None,
        backend: str = "auto",
        size: str | None = None,
        max_turns: int = 3,
        reward: str | RewardConfig | RewardFn | None = "drkernel",
        evaluator: BaseEvaluator | None = None,
        workers: int | None = None,
        config: EvalConfig | None = None,
        dtype: str | None = None,
        tolerance: str | None = None,
        terminate_on_success: bool = False,
        max_text_length: int = 100_000,
        render_mode: str | None = None,
    ):
        from tasks import load_tasks

        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, not {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, not {render_mode!r}")
        if evaluator is not None and workers is not None:
            raise ValueError("pass either evaluator= (a pool to use) or workers= (a pool of that size), not both")
        if evaluator is not None:
            if backend not in ("auto", evaluator.backend):
                raise ValueError(f"backend={backend!r} but the evaluator runs on {evaluator.backend!r}")
            self.backend = evaluator.backend
        else:
            self.backend = require_local(backend)  # fails here, not at the first step, without a GPU for "cuda"
        self.size = size or default_size(self.backend)
        self.tasks = load_tasks(tasks, size=self.size, levels=levels)
        if not self.tasks:
            where = f" of level {', '.join(map(str, levels))}" if levels else ""
            raise ValueError(f"no tasks{where} in {tasks if isinstance(tasks, str) else 'the given list'}")
        self._by_id = {t.id: i for i, t in enumerate(self.tasks)}
        self.max_turns = int(max_turns)
        self.reward_config = RewardConfig.of(reward)
        if dtype is not None or tolerance is not None:
            base = config or (evaluator.config if evaluator is not None else EvalConfig())
            config = base.with_(**{k: v for k, v in (("dtype", dtype), ("tolerance", tolerance)) if v is not None})
        self.config = config
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.observation_space = TextSpace(max_text_length)
        self.action_space = TextSpace(max_text_length)
        self._given, self._workers = evaluator, workers
        self._evaluator: BaseEvaluator | None = None  # the pool this env holds, taken at the first step
        self.task = None
        self.turn = 0
        self.best_speedup = 0.0
        self.messages: list[dict[str, str]] = []
        self.results: list[EvalResult] = []
        self.rewards: list[float] = []
        self._done = True

    # -- evaluator ------------------------------------------------------------------------------

    @property
    def evaluator(self) -> BaseEvaluator:
        """The pool this env holds, taken on first use so that ``make`` and ``check_env`` stay cheap."""
        if self._evaluator is None:
            if self._given is not None:
                self._evaluator = self._given.hold()
            else:
                self._evaluator = POOLS.acquire(self.backend, self._workers)
        return self._evaluator

    def __getstate__(self) -> dict:
        """Picklable at any point of an episode: the pool this env holds stays behind (the copy takes
        its own hold at its first step), and a given evaluator travels as a handle (the same pool in
        this process, the default pool of its backend in another) with its config kept."""
        state = self.__dict__.copy()
        state["_evaluator"] = None
        if self._given is not None:
            state["config"] = self.config or self._given.config
        return state

    # -- Gymnasium API --------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            index = int(self.np_random.integers(len(self.tasks)))
        elif task_id in self._by_id:
            index = self._by_id[task_id]
        else:
            close = [t for t in self._by_id if task_id.split("/")[-1].lower() in t.lower()][:5]
            hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(self.tasks)} tasks loaded)"
            raise ValueError(f"no task {task_id!r}{hint}")
        self.task = self.tasks[index]
        config = self.config or (self._given.config if self._given is not None else EvalConfig())
        program = self.task.program(self.size)
        prompt = self._fit(task_prompt(program, self.max_turns, self.backend, config.tol, declares_backward(program)))
        self.turn, self.best_speedup, self._done = 0, 0.0, False
        self.messages = [{"role": "user", "content": prompt}]
        self.results, self.rewards = [], []
        info = {"task_id": self.task.id, "level": self.task.level, "turn": 0, "max_turns": self.max_turns,
                "backend": self.backend, "size": self.size, "best_speedup": 0.0, "messages": self._messages()}
        return prompt, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        return self.finish_step(action, self.submit(action).result())

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return transcript(self.messages, self.rewards)

    def close(self) -> None:
        if self._evaluator is not None:
            self._evaluator.release()
            self._evaluator = None
        super().close()

    # -- the two halves of a step (``split_step.SplitStepEnv``): many evaluations in flight --------

    def submit(self, action: str) -> Future:
        """Start evaluating ``action`` for the current turn; returns a Future of ``EvalResult``."""
        if self._done:
            raise ResetNeeded("the episode is over (or never started): call reset() before step()")
        return self.evaluator.submit(self.task, _as_text(action), size=self.size, config=self.config)

    def finish_step(self, action: str, result: EvalResult) -> tuple[str, float, bool, bool, dict]:
        """Turn an evaluation into the step's (observation, reward, terminated, truncated, info)."""
        action = _as_text(action)
        self.turn += 1
        reward = float(self.reward_config(result))
        speedup = chosen_speedup(result, self.reward_config.speed)  # the figure the reward pays
        if result.clean and speedup is not None:
            self.best_speedup = max(self.best_speedup, float(speedup))
        terminated = bool(self.terminate_on_success and result.clean)
        truncated = bool(self.turn >= self.max_turns and not terminated)
        self._done = terminated or truncated
        observation = self._fit(turn_message(result.feedback, self.turn, self.max_turns, self._done))
        self.messages += [{"role": "assistant", "content": action}, {"role": "user", "content": observation}]
        self.results.append(result)
        self.rewards.append(reward)
        info = result.to_dict()
        modelled = info.pop("modelled")  # nested and sometimes absent: vector envs merge flat values only
        info.update(modelled_speedup=modelled["speedup"] if modelled else None, paid_speedup=speedup,
                    task_id=self.task.id, level=self.task.level, turn=self.turn, max_turns=self.max_turns,
                    best_speedup=self.best_speedup, messages=self._messages())
        return observation, reward, terminated, truncated, info

    # -- helpers --------------------------------------------------------------------------------

    def _messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]  # fresh objects: callers keep what we return

    def _fit(self, text: str) -> str:
        limit = self.observation_space.max_length
        return text if len(text) <= limit else text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def _as_text(action) -> str:
    """Any text is an action (bytes are decoded); anything else is a caller's bug, not model output."""
    if isinstance(action, bytes):
        return action.decode("utf-8", errors="replace")
    if not isinstance(action, str):
        raise TypeError(f"the action must be text (str), not {type(action).__name__}")
    return str(action)
