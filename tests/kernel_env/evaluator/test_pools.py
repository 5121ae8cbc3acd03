"""Who may close a pool: its creator, or the last of its holders; pools of two backends live side by side."""

import pytest

from kernel_env import Evaluator, KernelEnv
from kernel_env.evaluator import POOLS, default_evaluator, evaluate


def test_holds_keep_a_pool_open_until_the_last_release():
    pool = Evaluator(backend="interpreter", workers=1)  # the creator holds it
    pool.hold()
    pool.release()
    assert not pool.closed
    pool.release()  # the creator's own hold, given back last
    assert pool.closed
    with pytest.raises(RuntimeError, match="closed"):
        pool.hold()


def test_the_creator_closes_whatever_others_hold():
    with Evaluator(backend="interpreter", workers=1) as pool:
        pool.hold()
    assert pool.closed


def test_envs_asking_for_the_same_workers_share_one_pool_closed_with_the_last():
    a = KernelEnv(backend="interpreter", workers=1, levels=(1,))
    b = KernelEnv(backend="interpreter", workers=1, levels=(1,))
    pool = a.evaluator
    assert b.evaluator is pool and POOLS.acquire("interpreter", 1) is pool
    pool.release()  # the acquire above
    a.close()
    assert not pool.closed
    b.close()
    assert pool.closed
    c = KernelEnv(backend="interpreter", workers=1, levels=(1,))
    assert c.evaluator is not pool and not c.evaluator.closed  # a new one for the next user
    c.close()


def test_an_env_never_closes_the_evaluator_it_was_given():
    with Evaluator(backend="interpreter", workers=1) as pool:
        env = KernelEnv(evaluator=pool, levels=(1,))
        assert env.evaluator is pool
        env.close()
        assert not pool.closed


def test_asking_for_another_backend_leaves_a_held_pool_usable(bundled, monkeypatch):
    """The first release closed the default pool when a caller asked for another backend: one
    ``evaluate(..., backend="interpreter")`` broke every CUDA env ("the evaluator is closed")."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the registry is under test, not CUDA
    relu = bundled["L1/19_ReLU"]
    env = KernelEnv(tasks=[relu], backend="interpreter", max_turns=2)
    env.reset(seed=0)
    env.step(relu.solution)
    cuda_pool = default_evaluator("cuda")  # built lazily: no worker starts without a GPU
    assert evaluate(relu, relu.solution, backend="interpreter").clean  # the interpreter pool again
    assert not cuda_pool.closed and not env.evaluator.closed
    _, reward, *_ = env.step(relu.solution)
    assert reward > 1.0
    env.close()
    assert default_evaluator("cuda") is cuda_pool and not default_evaluator("interpreter").closed


def test_a_broken_reference_is_not_the_submissions_fault_and_is_not_cached(evaluator, bundled):
    from tasks.loaders import task_from_source

    broken = task_from_source(bundled["L1/19_ReLU"].source.replace("return torch.relu(x)", "raise RuntimeError('no')"),
                              1, "98_Broken_relu.py")
    first = evaluator.evaluate(broken, bundled["L1/19_ReLU"].solution)
    again = evaluator.evaluate(broken, bundled["L1/19_ReLU"].solution)
    assert first.harness_error and not first.correct and "not your fault" in first.feedback
    assert "reference failed" in first.error and not again.timings.get("cache_hit")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_where_it_is_asked_for():
    """It used to be accepted and then fail every task with "could not run the task's reference"."""
    from kernel_env.evaluator import BackendUnavailable
    from kernel_env.evaluator.shared import PoolRegistry

    for make in (lambda: Evaluator(backend="cuda", workers=1), lambda: KernelEnv(backend="cuda"),
                 lambda: PoolRegistry().default("cuda")):
        with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU on this machine.*CPU build.*interpreter"):
            make()
