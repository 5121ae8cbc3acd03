"""Register the ``kernel_env/`` ids with Gymnasium; called on ``import kernel_env``.

Gymnasium 1.x has no plugin discovery, so the package registers itself on import. Registration is
idempotent (a spawned subprocess, a reload, or a second call never re-registers or warns), and entry
points are strings, so registering imports neither torch nor the env modules.
"""

from __future__ import annotations

NAMESPACE = "kernel_env"
ENTRY_POINT = "kernel_env.envs.text_env:KernelEnv"
VECTOR_ENTRY_POINT = "kernel_env.envs.vector_env:KernelVectorEnv"

#: id -> the KernelEnv arguments it fixes: the KernelBench levels it serves (None: every level of the
#: task source), and for the backward suite the suite itself.
ENV_KWARGS: dict[str, dict] = {
    f"{NAMESPACE}/KernelBench-L1-v0": {"levels": (1,)},
    f"{NAMESPACE}/KernelBench-L2-v0": {"levels": (2,)},
    f"{NAMESPACE}/KernelBench-L3-v0": {"levels": (3,)},
    f"{NAMESPACE}/KernelBench-v0": {"levels": None},
    f"{NAMESPACE}/KernelBench-Backward-v0": {"tasks": "backward", "levels": None},
}
ENV_IDS = tuple(ENV_KWARGS)


def register_envs() -> None:
    """Without Gymnasium there is nothing to register with, and the evaluator works without it (a bare
    GPU image runs ``python3 -m kernel_env.gpucheck``, which installs the carried Gymnasium)."""
    try:
        import gymnasium
    except ModuleNotFoundError:
        return
    for env_id, kwargs in ENV_KWARGS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            nondeterministic=True,  # timings (hence rewards) are measured, never replayed
            kwargs=dict(kwargs),
        )
