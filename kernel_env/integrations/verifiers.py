"""verifiers (v1 API): the kernel tasks as a verifiers taskset, played by a multi-turn env.

Tested with verifiers 0.4.0, whose stack is ``verifiers.v1`` (``Taskset``/``Task``/``Env``/``Harness``;
the older ``MultiTurnEnv``/``GymEnv`` classes are gone). Offered here:

- ``KernelTaskset``: one ``KernelTask`` per kernel task (``data.id`` is the task id, e.g.
  ``"L1/19_ReLU"``); the prompt is ``KernelEnv``'s first user message. ``KernelTasksetConfig`` holds
  the ``KernelEnv`` arguments (``tasks``, ``levels``, ``backend``, ``size``, ``max_turns``, ...).
- ``KernelVerifiersEnv``: the env turn is ``KernelEnv.step``. ``run()`` opens the agent's interaction,
  evaluates each reply host-side on the evaluator pool and sends the feedback back as the next user
  turn, until ``KernelEnv`` ends the episode (``max_turns``, or ``terminate_on_success``). The trace's
  reward ``kernel_reward`` is the best turn's ``KernelEnv`` reward (``episode_reward="last"``/``"sum"``
  to change that); metrics ``correct``, ``hacked``, ``turns``, ``best_speedup``; per-turn verdicts in
  ``trace.info["kernel_turns"]``.
- ``KernelChatHarness``: the default harness of this taskset, a tool-less chat loop run in-process
  (one chat completion per segment, through verifiers' interception endpoint, so the trace and its
  tokens are recorded as for any harness).
- ``load_environment()``, ``play()`` (run episodes in-process) and ``scripted_endpoint()`` (a local
  OpenAI-compatible endpoint that answers with fixed text: a dry run without an LLM server).

What does not work, and why:

- verifiers resolves plugin ids to *top-level* modules: ``loaders._import_plugin`` first calls
  ``importlib.util.find_spec("verifiers.v1.tasksets.<id>")``, which for a dotted id raises
  ``ModuleNotFoundError: No module named 'verifiers.v1.tasksets.kernel_env'``. Importing this module
  therefore registers it under the top-level name ``kernel_env_verifiers`` (``TASKSET_ID``) in
  ``sys.modules``. That serves every in-process use (``load_environment`` here, ``vf.load_environment``,
  ``vf.resolve_env_config``), but not a fresh process that never imported it: ``vf-eval
  kernel_env_verifiers`` or a verifiers env server cannot find the id.
- verifiers' built-in ``null`` harness (its generic tool-less chat loop) runs a PEP 723 script under
  ``uv``; on first use it installs uv (``pip install --user uv`` or a download into ``~/.local/bin``)
  and syncs the script's dependencies from the network into ``~/.cache/uv``. It works online, but it
  is a network dependency and writes outside the project, so the default harness here is
  ``KernelChatHarness`` (in-process, offline). ``null`` can still be pinned with
  ``agent.harness.id``; it streams, which ``scripted_endpoint`` does not serve (``ProviderError:
  upstream stream ended before its terminal event``).
- The agent runs in the local ``subprocess`` runtime (nothing is executed there: kernels run in this
  package's own sandboxed workers); verifiers' container and cloud runtimes are not needed or tested.
- Training through prime-rl is not tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: the top-level module name verifiers' loaders find this module under (see the module docstring)
TASKSET_ID = "kernel_env_verifiers"
sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])

# verifiers' loaders look the plugin classes up through ``__all__``: exactly one Taskset, Env and Harness
__all__ = [  # noqa: F822 (the Kernel* classes are built on first access)
    "TASKSET_ID", "KernelChatHarness", "KernelChatHarnessConfig", "KernelData", "KernelEnvConfig", "KernelTask",
    "KernelTaskset", "KernelTasksetConfig", "KernelVerifiersEnv", "ScriptedEndpoint", "env_config", "load_environment",
    "play", "scripted_endpoint",
]
_CLASSES = tuple(name for name in __all__ if name.startswith("Kernel"))


def __getattr__(name: str):
    """The classes subclass verifiers' own, so they are built (and verifiers imported) on first use."""
    if name in _CLASSES:
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _classes() -> dict[str, type]:
    if "KernelTaskset" not in globals():
        globals().update(_build())
    return {name: globals()[name] for name in _CLASSES}


def env_config(episode_reward: str = "best", **taskset: Any):
    """A ``KernelEnvConfig`` for ``KernelEnv`` arguments ``taskset`` (``levels=[1]``, ``max_turns=2``...)."""
    return _classes()["KernelEnvConfig"](taskset={"id": TASKSET_ID, **taskset}, episode_reward=episode_reward)


def load_environment(evaluator=None, episode_reward: str = "best", **taskset: Any):
    """The env for ``KernelEnv`` arguments ``taskset``; ``evaluator``: the pool every episode shares
    (default: the process-wide pool of the backend)."""
    import verifiers.v1 as vf

    env = vf.load_environment(env_config(episode_reward=episode_reward, **taskset))
    env.evaluator = evaluator
    return env


async def play(env, model: str, client, tasks: Sequence | None = None) -> list:
    """Run one episode per task (default: every task of the env's taskset), concurrently, in-process;
    returns the ``vf.Episode`` list. ``client``: a ``vf.EvalClientConfig`` (or ``scripted_endpoint``'s)."""
    import verifiers.v1 as vf

    ctx = vf.ModelContext(model=model, client=client)
    tasks = list(env.taskset) if tasks is None else list(tasks)
    async with env.serving():
        return list(await asyncio.gather(*(env.run_episode(task, ctx) for task in tasks)))


@dataclass
class ScriptedEndpoint:
    """What ``scripted_endpoint`` yields: the client config to hand to ``play``, and the requests seen."""

    client: Any
    requests: list[list[dict]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def scripted_endpoint(reply):
    """A local OpenAI-compatible chat endpoint whose "model" answers ``reply`` (a string, or a callable
    of the request's messages). For dry runs and tests; serves non-streaming completions only."""
    from aiohttp import web
    from verifiers.v1 import EvalClientConfig

    seen: list[list[dict]] = []

    async def complete(request):
        body = await request.json()
        seen.append(body["messages"])
        text = reply(body["messages"]) if callable(reply) else reply
        return web.json_response({
            "id": f"scripted-{len(seen)}", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        })

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = EvalClientConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key_var="KERNEL_ENV_SCRIPTED_API_KEY")
        yield ScriptedEndpoint(client=client, requests=seen)
    finally:
        await runner.cleanup()


def _build() -> dict[str, type]:
    import verifiers.v1 as vf
    from verifiers.v1.dialects.chat import message_to_wire
    from verifiers.v1.errors import MODEL_TRANSPORT_ERROR_EXIT_CODE

    from ..envs.text_env import KernelEnv

    class KernelTasksetConfig(vf.TasksetConfig):
        """``KernelEnv`` arguments, shared by the prompts and by every episode's env."""

        id: str = TASKSET_ID
        tasks: str = "bundled"
        levels: list[int] | None = None
        backend: str = "auto"
        size: str | None = None
        max_turns: int = 3
        reward: str = "drkernel"
        dtype: str | None = None
        tolerance: str | None = None
        terminate_on_success: bool = False

        def kernel_env(self, **kwargs: Any) -> KernelEnv:
            levels = tuple(self.levels) if self.levels is not None else None
            return KernelEnv(tasks=kwargs.pop("tasks", self.tasks), levels=levels, backend=self.backend,
                             size=self.size, max_turns=self.max_turns, reward=self.reward, dtype=self.dtype,
                             tolerance=self.tolerance, terminate_on_success=self.terminate_on_success, **kwargs)

    class KernelData(vf.TaskData):
        level: int

    class KernelTask(vf.Task[KernelData, vf.State, vf.TaskConfig]):
        @property
        def key(self) -> str:
            return self.data.id  # durable: the kernel task id

    class KernelTaskset(vf.Taskset[KernelTask, KernelTasksetConfig]):
        def kernel_tasks(self) -> list:
            """The ``tasks.Task`` objects, loaded once (episodes build their env from them)."""
            if getattr(self, "_kernel_tasks", None) is None:
                self._kernel_tasks = self.config.kernel_env().tasks
            return self._kernel_tasks

        def load(self):
            env = self.config.kernel_env(tasks=self.kernel_tasks())  # resetting starts no pool
            for task in env.tasks:
                prompt, info = env.reset(options={"task_id": task.id})
                yield KernelTask(KernelData(id=task.id, name=task.id, prompt=prompt, level=info["level"]),
                                 self.config.task)

    class KernelEnvConfig(vf.EnvConfig):
        # nothing runs in the agent's runtime (kernels run in kernel_env's own workers): a local one
        agent: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())
        taskset: KernelTasksetConfig = KernelTasksetConfig()
        episode_reward: Literal["best", "last", "sum"] = "best"
        """How the turns' ``KernelEnv`` rewards become the episode's ``kernel_reward``."""

    class KernelVerifiersEnv(vf.Env[KernelEnvConfig]):
        evaluator = None  # a kernel_env pool shared by the episodes; None: the process-wide one

        async def run(self, task, agents) -> None:
            env = self.taskset.config.kernel_env(tasks=self.taskset.kernel_tasks(), evaluator=self.evaluator)
            feedback = None
            try:
                env.reset(options={"task_id": task.data.id})
                async with agents.agent.interaction(task) as interaction:
                    segment = await interaction.turn()  # the task's prompt opens: the model speaks first
                    while not segment.terminated:
                        reply = segment.last_reply
                        result = await asyncio.wrap_future(env.submit(reply))  # the event loop stays free
                        feedback, _, terminated, truncated, _ = env.finish_step(reply, result)
                        if terminated or truncated:
                            break
                        segment = await interaction.turn(feedback)
                self._record(interaction.trace, env, feedback)
            finally:
                env.close()

        def _record(self, trace, env: KernelEnv, feedback: str | None) -> None:
            rewards = env.rewards or [0.0]
            how = self.config.episode_reward
            trace.record_reward("kernel_reward", max(rewards) if how == "best" else rewards[-1] if how == "last"
                                else sum(rewards))
            trace.record_metrics({"correct": float(any(r.clean for r in env.results)),
                                  "hacked": float(any(r.hacks for r in env.results)),
                                  "turns": float(len(env.rewards)), "best_speedup": env.best_speedup})
            trace.info["kernel_turns"] = [{"reward": reward, "correct": r.correct, "hacks": list(r.hacks),
                                           "stage": r.stage, "error": r.error}
                                          for reward, r in zip(env.rewards, env.results)]
            trace.info["final_feedback"] = feedback

    class KernelChatHarnessConfig(vf.HarnessConfig):
        id: str = TASKSET_ID

    class KernelChatHarness(vf.Harness[KernelChatHarnessConfig]):
        """Tool-less chat in-process: each segment is one completion of the conversation so far."""

        APPENDS_SYSTEM_PROMPT = True
        SUPPORTS_RESUME = True  # verifiers relaunches on the whole conversation for the next turn
        EXECUTES_CODE = False
        NEEDS_CONTAINER = False

        async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, tool_interception_url=None):
            import openai

            system, prompt = self.resolve_prompt(data)
            messages = [{"role": "system", "content": system}] if system else []
            if isinstance(prompt, str):
                messages.append({"role": "user", "content": prompt})
            else:
                messages += [message_to_wire(m) for m in prompt or []]
            try:
                async with openai.AsyncOpenAI(base_url=endpoint, api_key=secret, max_retries=0) as client:
                    await client.chat.completions.create(model=ctx.model, messages=messages)
            except openai.APIConnectionError as e:
                return vf.ProgramResult(MODEL_TRANSPORT_ERROR_EXIT_CODE, "", str(e))
            except openai.APIStatusError as e:  # e.g. a turn limit refusing the call: verifiers judges it
                return vf.ProgramResult(1, "", str(e))
            return vf.ProgramResult(0, "", "")

    built = dict(locals())
    classes = {name: built[name] for name in _CLASSES}
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name  # importable (and picklable) by name
    return classes
