"""Trainer throughput with the tiny model on the toy env: tokens generated per second of a whole step,
and the generation / training rates the trainer reports. Skipped while ``agents.trainer`` is absent."""

import tempfile

import pytest

trainer = pytest.importorskip("agents.trainer", reason="agents.trainer is not available")
config_module = pytest.importorskip("agents.config")


def test_trainer_tokens_per_second(benchmark):
    if not hasattr(trainer, "train") or not hasattr(config_module, "TrainConfig"):
        pytest.skip("agents.trainer has no train(TrainConfig) yet")
    with tempfile.TemporaryDirectory() as out:
        config = config_module.TrainConfig(model="tiny", env="agents/TargetString-v0", algo="grpo", steps=3,
                                           tasks_per_step=2, group_size=4, max_new_tokens=48, out_dir=out,
                                           plot=False, progress=False, seed=0)
        result = benchmark.pedantic(lambda: trainer.train(config), rounds=1, iterations=1)
    steady = result.history[1:]  # the first step also builds the model and the env pool
    mean = lambda key: round(sum(r[key] for r in steady) / len(steady), 1)
    benchmark.extra_info.update(
        tokens_per_s=mean("tokens_per_s"), gen_tokens_per_s=mean("gen_tokens_per_s"),
        train_tokens_per_s=mean("train_tokens_per_s"), step_s=round(sum(r["time_collect_s"] + r["time_train_s"]
                                                                         for r in steady) / len(steady), 2),
        generated_tokens_per_step=mean("generated_tokens"),
    )
