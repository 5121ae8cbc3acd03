"""RayEvaluator on a real local Ray cluster (no local_mode): the same interface as Evaluator, envs
unchanged, a shared reference cache, restarts of killed actors, back-pressure and timeouts."""

import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'kernel-env[ray]')")

from helpers import tagged

from kernel_env import EvalConfig, KernelEnv, KernelVectorEnv
from kernel_env.evaluator.ray_pool import TIMED_OUT, RayEvaluator
from kernel_env.evaluator.submission import parse_submission
from kernel_env.integrations.sb3 import KernelTuningEnv, launch_variant

pytestmark = pytest.mark.timeout(600)  # cluster and actor start-up on a loaded 2-core machine


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_ev(cluster):
    """Two actors, one per CPU slot of the cluster: the default shape."""
    with RayEvaluator(backend="interpreter") as ev:
        ev.actor_info(timeout_s=600)  # wait for the actors to start (slow on a busy machine) instead of failing
        yield ev


def _slow(task) -> str:
    """The task's own kernel with 16-element blocks: correct, and seconds on the interpreter."""
    return f"```python\n{launch_variant(parse_submission(task.solution).code, 1 / 64)}\n```"


def test_same_interface_and_verdicts(ray_ev, relu):
    assert ray_ev.backend == "interpreter" and ray_ev.n_workers == 2
    future = ray_ev.submit(relu, tagged(relu.solution, "ray interface"))
    result = future.result(timeout=120)
    assert result.clean and result.speedup and result.backend == "interpreter"
    fallback = relu.solution.replace("return out", "return torch.relu(x)")
    hack = ray_ev.evaluate(relu, fallback)
    assert "kernel_not_contributing" in hack.hacks or "no_own_kernel_launched" in hack.hacks
    assert ray_ev.evaluate(relu, "no code here").error  # errors are values, as with Evaluator


def test_envs_take_it_unchanged(ray_ev, relu):
    env = KernelEnv(tasks=[relu], evaluator=ray_ev, max_turns=1)
    env.reset(seed=0)
    _, reward, _, truncated, info = env.step(tagged(relu.solution, "ray env"))
    assert reward > 1.0 and truncated and info["correct"]
    venv = KernelVectorEnv(num_envs=2, tasks=[relu], evaluator=ray_ev, max_turns=1)
    venv.reset(seed=0)
    _, rewards, _, truncations, _ = venv.step([tagged(relu.solution, f"ray vec {i}") for i in range(2)])
    assert (rewards > 1.0).all() and truncations.all()
    venv.close()
    tuning = KernelTuningEnv(ray_ev, tasks=[relu])
    tuning.reset(seed=0)
    _, reward, _, _, info = tuning.step(4)  # the shipped block size
    assert reward > 1.0 and info["correct"]


def test_result_cache_and_shared_references(ray_ev, bundled):
    task = bundled["L1/8_Sigmoid"]
    fixed = EvalConfig(seed=11)  # one seed set: with secret ones, which set two actors share is chance
    results = ray_ev.map([(task, tagged(task.solution, f"ref share {i}")) for i in range(4)], config=fixed)
    assert all(r.clean for r in results) and all(r.inputs == "fixed" for r in results)
    stats = ray_ev.stats()
    assert stats["hits"] >= 1  # one actor computed the reference, the other fetched it
    again = ray_ev.evaluate(task, tagged(task.solution, "ref share 0"), config=fixed)
    assert again.timings.get("cache_hit") == 1.0 and again.speedup == results[0].speedup


def test_killed_actor_mid_stream_still_answers(ray_ev, relu):
    before = ray_ev.restarts
    futures = [ray_ev.submit(relu, tagged(relu.solution, f"kill {i}")) for i in range(6)]
    time.sleep(0.5)  # requests are on both actors now
    ray.kill(ray_ev.actors[0], no_restart=False)
    results = [f.result(timeout=180) for f in futures]
    assert all(r.clean for r in results), [r.error for r in results]
    assert ray_ev.restarts > before
    assert len(ray_ev.actor_info(timeout_s=600)) == 2  # the killed actor is back (slow to restart under load)


def test_request_timeout_resolves_instead_of_hanging(ray_ev, bundled):
    task = bundled["L1/8_Sigmoid"]
    ray_ev.evaluate(task, task.solution)  # warm: the timeout below is about the slow candidate only
    start = time.monotonic()
    result = ray_ev.submit(task, _slow(task), timeout_s=1.0).result(timeout=60)
    assert TIMED_OUT in result.error and time.monotonic() - start < 30
    assert ray_ev.timeouts >= 1
    assert ray_ev.evaluate(task, tagged(task.solution, "after timeout")).clean  # the stuck actor was restarted


def test_back_pressure_bounds_in_flight_and_blocks_submit(cluster, relu):
    with RayEvaluator(backend="interpreter", actors=1, max_in_flight=1, max_queued=1,
                      actor_options={"num_cpus": 0}) as ev:
        futures, done_when_third_returned = [], []

        def producer():
            for i in range(3):
                futures.append(ev.submit(relu, tagged(relu.solution, f"pressure {i}")))
            done_when_third_returned.append(futures[0].done())

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join(timeout=180)
        results = [f.result(timeout=120) for f in futures]
        assert all(r.clean for r in results)
        assert ev.peak_in_flight == 1
        assert done_when_third_returned == [True]  # submit #3 waited for a free slot


def test_named_evaluators_share_actors(cluster, relu):
    first = RayEvaluator(backend="interpreter", actors=1, name="ci-shared", actor_options={"num_cpus": 0})
    try:
        assert first.evaluate(relu, tagged(relu.solution, "named")).clean
        second = RayEvaluator(backend="interpreter", actors=1, name="ci-shared", actor_options={"num_cpus": 0})
        assert second.actors[0]._actor_id == first.actors[0]._actor_id
        assert second.evaluate(relu, tagged(relu.solution, "named 2")).clean
        second.close()  # a named pool outlives one driver's close
        assert first.evaluate(relu, tagged(relu.solution, "named 3")).clean
    finally:
        first.shutdown()
