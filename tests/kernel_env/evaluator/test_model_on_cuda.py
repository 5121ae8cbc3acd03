"""``model_on_cuda``: a CUDA evaluator asks interpreter workers for the model of the same code. The
CUDA half needs a GPU (tests/kernel_env/evaluator/test_gpu.py); the side run is tested here."""

from kernel_env import EvalConfig, Evaluator
from kernel_env.evaluator.pool import _Job


def test_the_interpreter_models_itself_without_a_side_run(evaluator, relu):
    job = _Job(relu, relu.solution, "small", EvalConfig(model_on_cuda=True))
    assert evaluator._model_elsewhere(job) is None


def test_a_cuda_evaluator_gets_the_model_from_interpreter_workers(relu):
    """Forced to believe it is a CUDA pool (no GPU here), the evaluator's side run is an ordinary
    interpreter evaluation on the same secret, for the configured GPU, with the option off."""
    ev = Evaluator(backend="interpreter", workers=1, seed_secret=7)
    ev.backend = "cuda"
    try:
        job = _Job(relu, relu.solution, "full", EvalConfig(model_on_cuda=True, gpu="H200"))
        side = ev._model_elsewhere(job).result()
        assert ev._modeller.backend == "interpreter" and ev._modeller._seed_secret == 7
        assert side.backend == "interpreter" and side.size == "small" and side.clean
        assert side.modelled["gpu"] == "H200" and side.modelled["speedup"] > 0
        assert ev._model_elsewhere(_Job(relu, relu.solution, "full", EvalConfig())) is None
    finally:
        ev.close()
    assert ev._modeller.closed
