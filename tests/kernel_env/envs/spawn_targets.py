"""Functions run in spawned subprocesses by the registration tests.

Kept apart from the test modules so that unpickling them in the child imports only gymnasium:
the child must register the ids itself (``import kernel_env`` or the ``kernel_env:`` prefix).
"""

import sys


def make_after_import(env_id: str) -> dict:
    import gymnasium

    import kernel_env  # noqa: F401 - registers the ids in this fresh process

    env = gymnasium.make(env_id, backend="interpreter")
    obs, info = env.reset(seed=3)
    env.close()
    return {"task_id": info["task_id"], "obs_len": len(obs), "levels": env.unwrapped.spec.kwargs["levels"]}


def make_with_prefix(env_id: str) -> dict:
    import gymnasium

    imported_before = "kernel_env" in sys.modules
    env = gymnasium.make(f"kernel_env:{env_id}", backend="interpreter")
    obs, info = env.reset(seed=3)
    env.close()
    return {"imported_before": imported_before, "task_id": info["task_id"], "obs_len": len(obs)}


def finish_pickled_episode(blob: bytes, answer: str) -> dict:
    """Unpickle a stepped env in a fresh process and play its last turn there (on this process's pool)."""
    import pickle

    env = pickle.loads(blob)
    _, reward, terminated, truncated, info = env.step(answer)
    env.close()
    return {"reward": reward, "truncated": truncated, "turn": info["turn"], "correct": info["correct"],
            "tolerance": env.config.tolerance}
