"""``kernel-env bench`` on modelled speedups: rows, fast_p, labels in the table, JSON report and plot."""

import json

import pytest

from kernel_env import EvalResult, bench


class _Task:
    def __init__(self, task_id, level=1):
        self.id, self.level = task_id, level


def _modelled(speedup: float) -> dict:
    return {"gpu": "H100", "runtime_us": 10.0, "ref_runtime_us": 10.0 * speedup, "speedup": speedup,
            "bound": "memory", "flags": [], "rows": [], "ref_rows": []}


def _result(task_id, backend="interpreter", speedup=0.001, modelled=None, **kw) -> EvalResult:
    return EvalResult(task_id=task_id, backend=backend, compiled=True, correct=True, speedup=speedup, coverage=1.0,
                      stage="done", modelled=modelled, **kw)


def _rows(results: dict) -> list[dict]:
    return [bench._row(_Task(task_id), r) for task_id, r in results.items()]


def test_rows_carry_the_modelled_speedup_and_its_source():
    interp, cuda, missing = _rows({"L1/a": _result("L1/a", modelled=_modelled(1.3)),
                                   "L1/b": _result("L1/b", "cuda", speedup=0.9, modelled=_modelled(1.3)),
                                   "L1/c": None})
    assert interp["modelled_speedup"] == 1.3 and interp["speed_source"] == "modelled" and interp["speedup"] == 0.001
    assert cuda["modelled_speedup"] == 1.3 and cuda["speed_source"] == "measured"
    assert missing["modelled_speedup"] is None and missing["speed_source"] is None
    assert [bench.scored_speedup(r) for r in (interp, cuda, missing)] == [1.3, 0.9, None]
    assert json.loads(json.dumps([interp, cuda, missing])) == [interp, cuda, missing]


def test_fast_p_on_the_interpreter_counts_modelled_speedups():
    rows = _rows({"L1/a": _result("L1/a", modelled=_modelled(0.5)), "L1/b": _result("L1/b", modelled=_modelled(1.3)),
                  "L1/c": _result("L1/c", modelled=_modelled(2.5)),
                  "L1/d": _result("L1/d", modelled=_modelled(9.0), hacks=["output_caching"])})
    assert [bench.fast_p(rows, p) for p in bench.PS] == [0.75, 0.5, 0.5, 0.25, 0.25]
    summary = bench.summarize(rows)
    assert summary["all"]["speedups"] == "modelled (H100)"
    table = bench.format_table(summary)
    assert table.splitlines()[0].endswith("| mean coverage | speedups |")
    assert "| all | 4 | 4 | 1.00 | 1.00 | 0.25 | 0.75 | 0.50 | 0.50 | 0.25 | 0.25 | 100% | modelled (H100) |" in table
    report = bench.report(rows, summary, {"backend": "interpreter"})
    assert report["speedups"] == "modelled (H100)" and report["results"][1]["modelled_speedup"] == 1.3


def test_labels_say_measured_or_mixed():
    measured = _rows({"L1/a": _result("L1/a", "cuda", speedup=1.1, modelled=_modelled(3.0))})
    assert bench.speed_label(measured) == "measured" and bench.fast_p(measured, 2.0) == 0.0
    mixed = _rows({"L1/a": _result("L1/a", modelled=_modelled(3.0)), "L1/b": _result("L1/b")})
    assert bench.speed_label(mixed) == "modelled (H100) and measured"
    assert bench.speed_label([]) == "measured"


def test_plot_title_and_axis_name_the_speedups(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = {}

    def capture(fig, path, **kw):
        ax = fig.axes[0]
        seen.update(title=ax.get_title(), xlabel=ax.get_xlabel())

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    rows = _rows({"L1/a": _result("L1/a", modelled=_modelled(1.3))})
    bench.plot(rows, tmp_path / "p.png", title="fast_p: x")
    assert seen == {"title": "fast_p: x [modelled (H100)]",
                    "xlabel": "p (modelled (H100) speedup over the reference; log scale)"}


def test_bench_command_heads_the_table_with_the_speedups(monkeypatch, capsys, tmp_path):
    import kernel_env
    from kernel_env.cli import main

    class FakeEvaluator:
        backend = "interpreter"

        def __init__(self, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    rows = _rows({"L1/19_ReLU": _result("L1/19_ReLU", modelled=_modelled(1.3))})
    monkeypatch.setattr(kernel_env, "Evaluator", FakeEvaluator)
    monkeypatch.setattr(bench, "run_bench", lambda *a, **kw: [{**rows[0], "level": 1}])
    out_json = tmp_path / "b.json"
    assert main(["bench", "--solutions", "bundled", "--levels", "1", "--json-out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fast_p on modelled (H100) speedups for bundled on bundled (interpreter backend")
    assert "not a measurement" in out and "CPU figures" not in out
    assert json.loads(out_json.read_text())["speedups"] == "modelled (H100)"


@pytest.mark.parametrize("source", [None, "measured"])
def test_rows_without_a_source_count_the_measured_speedup(source):
    row = {"task_id": "L1/a", "level": 1, "clean": True, "speedup": 1.5, "modelled_speedup": 9.0,
           "speed_source": source}
    assert bench.scored_speedup(row) == 1.5 and bench.fast_p([row], 2.0) == 0.0
