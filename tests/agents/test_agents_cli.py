"""``kernel-agents train | solve | eval`` on the toy env, in-process."""

import json

from agents.cli import main


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
