"""The demo, ``kernel-env play`` and ``kernel-env bench``: output, input parsing, metrics, files."""

import io
import json
import shutil
from pathlib import Path

import pytest

from kernel_env import EvalResult, bench
from kernel_env.cli import build_parser, main, read_responses
from kernel_env.demo import HACK, run_demo

BUNDLED = Path(__file__).resolve().parents[2] / "tasks" / "bundled"


# -- demo -------------------------------------------------------------------------------------------

def test_demo_plays_a_hack_a_broken_and_a_correct_turn(evaluator):
    out = io.StringIO()
    assert run_demo(evaluator=evaluator, out=out) == 0
    text = out.getvalue()
    assert "one episode of L1/19_ReLU (interpreter backend, small size, 3 turns" in text
    for expected in ["--- assistant (hack attempt) ---", "--- assistant (broken kernel) ---",
                     "--- assistant (correct kernel) ---", "Turn 1 of 3. Your submission was rejected",
                     "no_own_kernel_launched", "Turn 2 of 3. Your output is incorrect", "Turn 3 of 3. Your kernel is correct",
                     "The episode is over.", "| turn | reply | compiled | correct | hacks | speedup | coverage | env reward",
                     "| 1 | hack attempt | True | True | no_own_kernel_launched | - | - | 0.000 |",
                     "| 2 | broken kernel | True | False | - | - | - | 0.000 |", "| 3 | correct kernel | True | True | - |",
                     "(modelled)", "interpreter timings are CPU figures"]:
        assert expected in text, expected
    assert "class Model(nn.Module)" in text.split("--- assistant")[0]  # the prompt comes first
    assert build_parser().parse_args(["demo"]).backend == "interpreter"  # CPU by default


# -- play -------------------------------------------------------------------------------------------

def test_read_responses_splits_on_separator_lines():
    stream = io.StringIO("first\nreply\n%%%\n\n%%%\n  %%%  \nlast one\n")
    assert list(read_responses(stream)) == ["first\nreply\n", "\n", "", "last one\n"]
    assert list(read_responses(io.StringIO("only\n"))) == ["only\n"]
    assert list(read_responses(io.StringIO("a\n%%%\n  \n"))) == ["a\n"]  # trailing blank text is no reply
    assert list(read_responses(io.StringIO(""))) == []


def test_play_reads_piped_replies_turn_by_turn(monkeypatch, capsys, bundled):
    relu = bundled["L1/19_ReLU"]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{HACK}\n%%%\n{relu.solution}\n"))
    code = main(["play", "--env", "kernel_env/KernelBench-L1-v0", "--task", "L1/19_ReLU", "--backend", "interpreter",
                 "--max-turns", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "=== L1/19_ReLU (interpreter backend, small size, up to 3 turns) ===" in out
    assert "Turn 1 of 3. Your submission was rejected" in out and "Turn 2 of 3. Your kernel is correct" in out
    assert "no more responses: the episode stops after 2 turn(s)" in out
    assert "| 1 | I will call torch for speed and keep ... | True | True | no_own_kernel_launched |" in out


# -- bench: solutions -------------------------------------------------------------------------------

@pytest.fixture
def two_tasks(bundled):
    return [bundled["L1/19_ReLU"], bundled["L1/8_Sigmoid"]]


def test_solutions_from_bundled_a_folder_and_jsonl(tmp_path, two_tasks, bundled):
    relu, sigmoid = two_tasks
    assert bench.load_solutions("bundled", two_tasks) == {relu.id: relu.solution, sigmoid.id: sigmoid.solution}
    assert bench.load_solutions(BUNDLED, two_tasks) == {relu.id: relu.solution, sigmoid.id: sigmoid.solution}

    (tmp_path / "L1").mkdir()
    (tmp_path / "L1" / "19_ReLU.md").write_text("level dir wins")
    (tmp_path / "19_ReLU.py").write_text("flat")
    (tmp_path / "8_Sigmoid.py").write_text("flat sigmoid")
    assert bench.load_solutions(tmp_path, two_tasks) == {relu.id: "level dir wins", sigmoid.id: "flat sigmoid"}

    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text(json.dumps({"task_id": relu.id, "response": "r"}) + "\n\n"
                     + json.dumps({"task_id": "L9/unknown", "response": "?"}) + "\n")
    with pytest.warns(UserWarning, match="L9/unknown is not among the tasks"):
        assert bench.load_solutions(jsonl, two_tasks) == {relu.id: "r"}
    jsonl.write_text(json.dumps({"task_id": relu.id, "response": "a"}) + "\n"
                     + json.dumps({"task_id": relu.id, "response": "b"}) + "\n")
    with pytest.raises(ValueError, match="a second solution"):
        bench.load_solutions(jsonl, two_tasks)
    jsonl.write_text('{"id": 1}\n')
    with pytest.raises(ValueError, match="expected"):
        bench.load_solutions(jsonl, two_tasks)
    with pytest.raises(FileNotFoundError):
        bench.load_solutions(tmp_path / "nowhere", two_tasks)


def test_a_flat_file_shared_by_two_levels_is_ambiguous(tmp_path, bundled):
    from dataclasses import replace

    relu = bundled["L1/19_ReLU"]
    twin = replace(relu, id="L2/19_ReLU", level=2)
    (tmp_path / "19_ReLU.md").write_text("which one?")
    with pytest.raises(ValueError, match="L1/19_ReLU or L2/19_ReLU"):
        bench.load_solutions(tmp_path, [relu, twin])
    (tmp_path / "level2").mkdir()
    (tmp_path / "level2" / "19_ReLU.md").write_text("two")
    (tmp_path / "L1").mkdir()
    (tmp_path / "L1" / "19_ReLU.md").write_text("one")
    assert bench.load_solutions(tmp_path, [relu, twin]) == {relu.id: "one", twin.id: "two"}


# -- bench: metrics ---------------------------------------------------------------------------------

def _row(task_id, level, clean=True, speedup=1.0, hacks=(), coverage=0.9, correct=None):
    return {"task_id": task_id, "level": level, "submitted": True, "compiled": True,
            "correct": clean if correct is None else correct, "clean": clean, "hacks": list(hacks),
            "speedup": speedup, "coverage": coverage, "stage": "done", "error": None}


def test_fast_p_counts_only_clean_results_faster_than_p():
    rows = [_row("L1/a", 1, speedup=0.5), _row("L1/b", 1, speedup=1.3), _row("L2/c", 2, speedup=2.5),
            _row("L2/d", 2, clean=False, correct=True, hacks=["output_caching"], speedup=None, coverage=None),
            {**_row("L2/e", 2, clean=False, speedup=None, coverage=None), "submitted": False, "compiled": False}]
    assert [bench.fast_p(rows, p) for p in bench.PS] == [0.6, 0.4, 0.4, 0.2, 0.2]
    summary = bench.summarize(rows)
    assert list(summary) == ["all", "L1", "L2"]
    everything = summary["all"]
    assert everything["tasks"] == 5 and everything["submitted"] == 4
    assert everything["correctness"] == 0.8 and everything["hack_rate"] == 0.2 and everything["compiled"] == 0.8
    assert everything["fast_p"] == {"0": 0.6, "1": 0.4, "1.2": 0.4, "1.5": 0.2, "2": 0.2}
    assert everything["mean_coverage"] == pytest.approx(0.9)
    assert summary["L1"]["fast_p"]["1"] == 0.5 and summary["L2"]["fast_p"]["0"] == pytest.approx(1 / 3)
    table = bench.format_table(summary)
    assert table.splitlines()[0].startswith("| tasks | n | submitted | compiled | correct | hacks | fast_0 | fast_1 |")
    assert "| all | 5 | 4 | 0.80 | 0.80 | 0.20 | 0.60 | 0.40 | 0.40 | 0.20 | 0.20 | 90% |" in table
    assert bench.fast_p([], 0) == 0.0


def test_run_bench_evaluates_and_marks_missing_solutions(evaluator, two_tasks):
    relu, sigmoid = two_tasks
    rows = bench.run_bench(two_tasks, {relu.id: relu.solution}, evaluator, progress=False)
    assert [r["task_id"] for r in rows] == [relu.id, sigmoid.id]
    assert rows[0]["clean"] and rows[0]["speedup"] > 0 and 0 < rows[0]["coverage"] <= 1
    assert rows[1] == {**rows[1], "submitted": False, "clean": False, "error": "no solution"}
    assert json.loads(json.dumps(rows)) == rows


def test_bench_command_writes_table_json_and_plot(tmp_path, capsys, bundled):
    tasks = tmp_path / "suite" / "level1"
    tasks.mkdir(parents=True)
    for name in ("19_ReLU", "8_Sigmoid"):
        shutil.copy(BUNDLED / "level1" / f"{name}.py", tasks / f"{name}.py")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"task_id": "L1/19_ReLU", "response": bundled["L1/19_ReLU"].solution}) + "\n"
                       + json.dumps({"task_id": "L1/8_Sigmoid", "response": HACK}) + "\n")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "fast_p.png"
    code = main(["bench", "--tasks", str(tmp_path / "suite"), "--solutions", str(answers), "--backend", "interpreter",
                 "--workers", "2", "--json-out", str(out_json), "--plot", str(out_png)])
    captured = capsys.readouterr()
    assert code == 0
    assert "| all | 2 | 2 | 1.00 | 0.50 | 0.50 | 0.50 | 0.00 |" in captured.out  # the hack is not counted
    assert "not clean: L1/8_Sigmoid: no_own_kernel_launched" in captured.out
    assert "evaluating" in captured.err  # progress goes to stderr
    report = json.loads(out_json.read_text())
    assert report["backend"] == "interpreter" and report["summary"]["all"]["fast_p"]["0"] == 0.5
    assert [r["task_id"] for r in report["results"]] == ["L1/8_Sigmoid", "L1/19_ReLU"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a minute on 2 cores
def test_bundled_reference_solutions_score_fast_0_of_one(capsys):
    assert main(["bench", "--solutions", "bundled", "--backend", "interpreter"]) == 0
    assert "| all | 59 | 59 | 1.00 | 1.00 | 0.00 | 1.00 |" in capsys.readouterr().out


def test_eval_result_fields_used_by_bench_exist():
    assert {"compiled", "correct", "hacks", "speedup", "coverage", "stage", "error"} <= set(EvalResult("x").to_dict())
