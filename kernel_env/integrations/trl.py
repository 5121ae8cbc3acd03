"""Hugging Face TRL: train a model on kernel-env tasks with ``trl.GRPOTrainer``.

What it offers:

- ``prompt_dataset(...)``: the tasks as a ``datasets.Dataset`` with a conversational ``prompt`` column (the
  exact first message ``KernelEnv.reset`` shows) and a ``task_id`` column.
- ``KernelReward``: a reward function for ``GRPOTrainer(reward_funcs=...)``. Each call evaluates the
  whole batch of completions at once on the evaluator pool (in parallel) and pays what ``KernelEnv.step``
  would pay for the same text (same tasks, size, config and ``RewardConfig``). It logs the fractions
  compiled / correct / hacked through TRL's ``log_metric`` and keeps the batch's ``EvalResult``s.
- ``KernelToolEnv`` / ``tool_env_factory``: multi-turn rollouts through ``GRPOTrainer(environment_factory=...)``.
  The model calls the ``submit_kernel(code)`` tool; each call is one ``KernelEnv`` turn and returns the
  evaluator's feedback; ``get_reward`` pays the best turn (or the last, or the sum).
- ``TOOL_CHAT_TEMPLATE`` / ``TOOL_RESPONSE_TEMPLATE`` / ``use_tool_template``: a tool-calling chat template
  and its response parser for tokenizers that have none (the tiny offline Llama of ``agents.policies``).
  Models whose template TRL knows (Qwen2.5/3/3.5, Llama 3.1/3.2, GPT-OSS, GLM-4-MoE, ...) need nothing.

Tested with trl 1.16.0, transformers 5.24, datasets 5.2, torch 2.13 (CPU), on the interpreter backend.

What does not work, and why:

- Tool calls are evaluated one rollout after another: TRL 1.16 runs each rollout's tool calls in turn
  (an ``async`` tool would only overlap the calls of one rollout), so ``KernelToolEnv`` cannot batch
  evaluations the way ``KernelReward`` does; when evaluation time dominates, single-turn
  training with ``KernelReward`` uses the pool better.
- ``environment_factory`` is experimental in TRL 1.16 (it warns; ``TRL_EXPERIMENTAL_SILENCE=1`` silences it)
  and needs transformers >= 5.2 and a chat template that renders tool calls (TRL checks).
- A randomly initialised model (the tiny preset) never writes a well-formed tool call: with it the
  multi-turn trainer runs end to end, but every rollout ends without a call (``tools/call_frequency`` 0,
  reward ``failure_value``). The tests drive TRL's tool loop with scripted generations instead
  (``tests/kernel_env/integrations/test_trl.py``). Real training needs a model tuned for tool calling.

``trl`` and ``datasets`` are imported inside the functions that need them: importing this module
needs neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..envs.text_env import KernelEnv
from ..scoring.result import EvalResult

__all__ = [
    "TOOL_CHAT_TEMPLATE", "TOOL_NOTE", "TOOL_RESPONSE_TEMPLATE", "KernelReward", "KernelToolEnv", "completion_text",
    "prompt_dataset", "tool_env_factory", "tool_prompt", "use_tool_template", "verdict",
]

#: Appended to the task prompt in tool mode: the task prompt asks for a code block, the tool wants code.
TOOL_NOTE = (
    "Submit your answer by calling the `submit_kernel` tool with the complete Python source (every import, "
    "your `@triton.jit` kernels and `ModelNew`) as `code`, not as a reply: only submitted code is scored. "
    "Each call is one turn; the tool replies with the evaluator's feedback."
)


def tool_prompt(prompt: str) -> str:
    """The task prompt of tool mode: the env's prompt plus ``TOOL_NOTE``."""
    return f"{prompt}\n\n{TOOL_NOTE}"


def prompt_dataset(
    tasks: str | Sequence = "bundled",
    levels: Sequence[int] | None = None,
    size: str | None = None,
    backend: str = "auto",
    max_turns: int = 1,
    task_ids: Sequence[str] | None = None,
    tools: bool = False,
    repeat: int = 1,
    **env_kwargs: Any,
):
    """The tasks as a ``datasets.Dataset`` with columns ``prompt`` (``[{"role": "user", "content": ...}]``)
    and ``task_id``.

    Each prompt comes from ``KernelEnv.reset(options={"task_id": ...})`` with these arguments, so it is
    exactly what the env shows (the prompt names the backend's limits and the number of turns, so build
    it with the backend and ``max_turns`` you train with). ``task_ids`` keeps those tasks, in that order;
    ``tools=True`` appends ``TOOL_NOTE`` (for ``KernelToolEnv``); ``repeat`` lists every task that many
    times. ``env_kwargs`` go to ``KernelEnv`` (``dtype``, ``tolerance``, ``config``, ``evaluator``).
    """
    from datasets import Dataset

    env = KernelEnv(tasks, levels=levels, backend=backend, size=size, max_turns=max_turns, **env_kwargs)
    try:  # reset never takes a pool: this costs no evaluation
        ids = list(task_ids) if task_ids is not None else [t.id for t in env.tasks]
        prompts = []
        for task_id in ids:
            text = env.reset(options={"task_id": task_id})[0]
            prompts.append([{"role": "user", "content": tool_prompt(text) if tools else text}])
    finally:
        env.close()
    return Dataset.from_dict({"prompt": prompts * repeat, "task_id": ids * repeat})


def completion_text(completion) -> str:
    """The text to evaluate: a plain string as is; for a conversational completion (a list of messages),
    the content of its last assistant message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    replies = [m for m in completion if m.get("role", "assistant") == "assistant"]
    if not replies:
        return ""
    content = replies[-1].get("content") or ""
    if isinstance(content, list):  # typed parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


class KernelReward:
    """A batched reward function for ``GRPOTrainer(reward_funcs=KernelReward(...))``.

    TRL 1.16 calls it as ``f(prompts=..., completions=..., completion_ids=..., task_id=[...], **columns,
    trainer_state=..., log_metric=..., log_extra=...)`` and logs it under ``__name__``
    (``rewards/<name>/mean``). Every completion of the call is submitted to the evaluator before any
    result is awaited (``evaluator.map``), so the pool's workers evaluate the batch in parallel.

    Args:
        tasks, levels, backend, size: which tasks and how, as for ``KernelEnv`` (and ``prompt_dataset``).
        reward: a preset name, a ``RewardConfig`` or a callable(EvalResult) -> float (default ``"drkernel"``).
        evaluator: the pool to use (held until ``close``); default: the process-wide pool of the backend.
        name: the name TRL logs the reward under.
        keep_results: keep the last call's ``EvalResult``s in ``last_results`` (hack codes, feedback).
        env_kwargs: more ``KernelEnv`` arguments (``config``, ``dtype``, ``tolerance``, ``workers``).
    """

    def __init__(self, tasks: str | Sequence = "bundled", levels: Sequence[int] | None = None, backend: str = "auto",
                 size: str | None = None, reward: Any = "drkernel", evaluator=None, name: str = "kernel_reward",
                 keep_results: bool = True, **env_kwargs: Any):
        # a KernelEnv resolves tasks, size, config and reward exactly as the env does; it is never stepped
        self._env = KernelEnv(tasks, levels=levels, backend=backend, size=size, max_turns=1, reward=reward,
                              evaluator=evaluator, **env_kwargs)
        self._tasks = {t.id: t for t in self._env.tasks}
        self.reward_config = self._env.reward_config
        self.__name__ = name
        self.keep_results = keep_results
        self.last_results: list[EvalResult] = []

    @property
    def evaluator(self):
        return self._env.evaluator

    @property
    def backend(self) -> str:
        return self._env.backend

    def task(self, task_id: str):
        try:
            return self._tasks[task_id]
        except KeyError:
            raise ValueError(f"no task {task_id!r} among the {len(self._tasks)} tasks this reward was built with; "
                             "build it with the same tasks/levels as the dataset") from None

    def evaluate(self, completions: Sequence, task_id: Sequence[str]) -> list[EvalResult]:
        """Evaluate every (task, completion) pair at once; results in input order."""
        if len(completions) != len(task_id):
            raise ValueError(f"{len(completions)} completions but {len(task_id)} task ids")
        items = [(self.task(t), completion_text(c)) for c, t in zip(completions, task_id)]
        return self.evaluator.map(items, size=self._env.size, config=self._env.config)

    def __call__(self, prompts, completions, task_id, **kwargs) -> list[float]:
        results = self.evaluate(completions, task_id)
        if self.keep_results:
            self.last_results = results
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if callable(log_metric) and results:
            n = len(results)
            log_metric("kernel/compiled", sum(r.compiled for r in results) / n)
            log_metric("kernel/correct", sum(r.correct and not r.hacks for r in results) / n)
            log_metric("kernel/hacked", sum(bool(r.hacks) for r in results) / n)
        if callable(log_extra):
            log_extra("kernel_verdict", [verdict(r) for r in results])
        return [float(self.reward_config(r)) for r in results]

    def close(self) -> None:
        """Give back the pool hold (the default pool itself stays warm)."""
        self._env.close()


def verdict(result: EvalResult) -> str:
    """One word or two for a completions table: ``correct``, ``hack: CODES`` or the stage it failed at."""
    if result.hacks:
        return "hack: " + ", ".join(result.hacks)
    return "correct" if result.correct else f"failed at {result.stage}"


class KernelToolEnv:
    """One rollout's environment for ``GRPOTrainer(environment_factory=...)`` (TRL 1.16's contract).

    TRL makes one instance per concurrent rollout and reuses it: before each rollout it calls
    ``reset(**row)`` with the dataset row's columns (``task_id``, ``prompt``, ...); every public method
    other than ``reset`` and ``get_reward`` becomes a tool (its schema read from the type hints and the
    Google-style docstring), here only ``submit_kernel``; after the rollout ``get_reward()`` scores it. So
    everything else on this class is private or a property.

    Args:
        aggregate: how the turns' rewards become the rollout's: ``"max"`` (the best turn; default),
            ``"last"`` or ``"sum"``. A rollout without a call earns the reward's ``failure_value``.
        env_kwargs: ``KernelEnv`` arguments (``tasks``, ``levels``, ``backend``, ``size``, ``max_turns``,
            ``reward``, ``evaluator``, ``config``, ...). Calls past ``max_turns`` are refused, unevaluated.
    """

    def __init__(self, aggregate: str = "max", **env_kwargs: Any):
        if aggregate not in ("max", "last", "sum"):
            raise ValueError(f"aggregate must be 'max', 'last' or 'sum', not {aggregate!r}")
        env_kwargs.setdefault("max_turns", 3)
        self._env = KernelEnv(**env_kwargs)
        self._aggregate = aggregate
        self._started = False

    @property
    def env(self) -> KernelEnv:
        """The wrapped ``KernelEnv`` (its ``results``, ``rewards``, ``messages`` and ``render()``)."""
        return self._env

    def reset(self, task_id: str | None = None, prompt=None, **row: Any) -> str | None:
        """Start a rollout on ``task_id`` (a random task without one). Returns what TRL appends to the
        row's last user message: the whole tool prompt when the row has none (TRL's empty placeholder),
        ``TOOL_NOTE`` when the row's prompt lacks it, else nothing."""
        text, _ = self._env.reset(options={"task_id": task_id} if task_id is not None else None)
        self._started = True
        given = prompt[-1].get("content", "") if isinstance(prompt, list) and prompt else (prompt or "")
        if not given:
            return tool_prompt(text)
        return None if TOOL_NOTE in str(given) else f"\n\n{TOOL_NOTE}"

    def submit_kernel(self, code: str) -> str:
        """Evaluate a Triton implementation of the task's program and report how it did.

        Args:
            code: The complete Python source: every import, the @triton.jit kernels and class ModelNew(nn.Module).

        Returns:
            The evaluator's feedback: whether the code compiled, whether its outputs were correct, and how fast it ran.
        """
        env = self._env
        if not self._started or env.turn >= env.max_turns:
            return "The episode is over: no more submissions are evaluated."
        if not isinstance(code, str):
            code = str(code)
        reply = code if "```" in code else f"```python\n{code}\n```"
        env.step(reply)
        left = env.max_turns - env.turn
        tail = "No submissions left." if left == 0 else f"{left} submission{'s' if left > 1 else ''} left."
        return f"Submission {env.turn} of {env.max_turns}. {env.results[-1].feedback}\n\n{tail}"

    def get_reward(self) -> float:
        """The rollout's reward from its turns (``aggregate``)."""
        rewards = self._env.rewards
        if not rewards:
            return float(self._env.reward_config.failure_value)
        if self._aggregate == "last":
            return float(rewards[-1])
        return float(sum(rewards) if self._aggregate == "sum" else max(rewards))

    @property
    def results(self) -> list[EvalResult]:
        return list(self._env.results)

    def _close(self) -> None:  # private: a public ``close`` would become a tool
        self._env.close()


def tool_env_factory(tasks: str | Sequence = "bundled", levels: Sequence[int] | None = None, backend: str = "auto",
                     size: str | None = None, **kwargs: Any):
    """A zero-argument factory of ``KernelToolEnv`` for ``environment_factory=``: the tasks are loaded
    once and shared by every instance (TRL makes one per concurrent rollout), as is the evaluator."""
    if kwargs.get("evaluator") is not None:
        backend = kwargs["evaluator"].backend
    probe = KernelEnv(tasks, levels=levels, backend=backend, size=size)
    shared = {"tasks": probe.tasks, "backend": probe.backend, "size": probe.size}
    probe.close()

    def make() -> KernelToolEnv:
        return KernelToolEnv(**shared, **kwargs)

    return make


# -- a tool-calling chat template for tokenizers without one ----------------------------------------

#: A Jinja chat template in the tiny tokenizer's format (``<|role|>content<|end|>``) that also renders
#: the tool schemas (a system message), assistant tool calls (``<tool_call>{"name": ..., "arguments":
#: {...}}</tool_call>``) and tool replies (``<|tool|>...<|end|>``). It renders each message on its own, so
#: it is prefix-preserving, as TRL's multi-turn loop requires.
TOOL_CHAT_TEMPLATE = (
    "{%- if tools %}<|system|>You can call these tools. To call one, write "
    "<tool_call>{\"name\": TOOL_NAME, \"arguments\": {ARGUMENT: VALUE}}</tool_call>\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}<|end|>{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m['role'] == 'assistant' %}<|assistant|>{{ m['content'] or '' }}"
    "{%- if m.tool_calls is defined and m.tool_calls %}{%- for call in m.tool_calls %}"
    "<tool_call>{\"name\": {{ call['function']['name'] | tojson }}, "
    "\"arguments\": {{ call['function']['arguments'] | tojson }}}</tool_call>"
    "{%- endfor %}{%- endif %}<|end|>"
    "{%- elif m['role'] == 'tool' %}<|tool|>{{ m['content'] }}<|end|>"
    "{%- else %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|assistant|>{%- endif %}"
)

#: How ``tokenizer.parse_response`` (transformers >= 5.13) reads a reply in that format back into
#: ``{"role": "assistant", "content": ..., "tool_calls": [...]}``.
TOOL_RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|assistant|>",
    "fields": {
        "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True,
                       "content": "json", "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|end\|>\s*", "content": "text"},
    },
}


def use_tool_template(tokenizer):
    """Give ``tokenizer`` the tool-calling template and its response parser (in place; returned).

    For a tokenizer whose template cannot render tool calls, which TRL rejects for ``environment_factory``
    ("The provided chat template does not support tool calling"). Its end-of-turn token must be
    ``<|end|>`` (the tiny preset's eos); for another model, prefer its own tool-calling template.
    """
    tokenizer.chat_template = TOOL_CHAT_TEMPLATE
    tokenizer.response_template = TOOL_RESPONSE_TEMPLATE
    return tokenizer
