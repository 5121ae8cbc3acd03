"""Registration: ids, idempotence, pickling, and fresh spawned processes."""

import multiprocessing
import pickle
import warnings

import cloudpickle
import gymnasium
from spawn_targets import make_after_import, make_with_prefix

import kernel_env
from kernel_env.envs.registration import ENTRY_POINT, VECTOR_ENTRY_POINT, register_envs


def test_ids_are_registered_on_import():
    assert kernel_env.ENV_IDS == ("kernel_env/KernelBench-L1-v0", "kernel_env/KernelBench-L2-v0",
                                  "kernel_env/KernelBench-L3-v0", "kernel_env/KernelBench-v0",
                                  "kernel_env/KernelBench-Backward-v0")
    for env_id in kernel_env.ENV_IDS:
        spec = gymnasium.spec(env_id)
        assert spec.namespace == "kernel_env" and spec.version == 0
        assert spec.nondeterministic and spec.entry_point == ENTRY_POINT
        assert spec.vector_entry_point == VECTOR_ENTRY_POINT and spec.max_episode_steps is None


def test_registration_is_idempotent():
    before = {i: gymnasium.spec(i) for i in kernel_env.ENV_IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        register_envs()
        register_envs()
    assert {i: gymnasium.spec(i) for i in kernel_env.ENV_IDS} == before


def test_specs_and_env_factories_pickle():
    for env_id in kernel_env.ENV_IDS:
        spec = gymnasium.spec(env_id)
        assert pickle.loads(pickle.dumps(spec)) == spec
    factory = cloudpickle.loads(cloudpickle.dumps(lambda: gymnasium.make("kernel_env/KernelBench-L1-v0")))
    assert factory().unwrapped.spec.id == "kernel_env/KernelBench-L1-v0"


def in_fresh_process(fn, *args):
    """Run ``fn(*args)`` in a newly spawned interpreter (nothing inherited, nothing imported)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def test_a_spawned_process_makes_with_the_module_prefix():
    out = in_fresh_process(make_with_prefix, "kernel_env/KernelBench-L1-v0")
    assert out["imported_before"] is False and out["task_id"].startswith("L1/") and out["obs_len"] > 200


def test_a_spawned_process_makes_after_import():
    out = in_fresh_process(make_after_import, "kernel_env/KernelBench-L1-v0")
    local = gymnasium.make("kernel_env/KernelBench-L1-v0", backend="interpreter").reset(seed=3)[1]["task_id"]
    assert out == {"task_id": local, "obs_len": out["obs_len"], "levels": (1,)}
