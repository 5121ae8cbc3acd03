"""Task model, loaders, shrinking and task validation."""

import json
from pathlib import Path

import pytest
import torch

from tasks import NotShrinkable, Task, TaskError, check_task, load_tasks, shrink
from tasks.loaders import task_from_source
from tasks.shrink import scaled_constants
from tasks.task import rewrite_constants

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kernelbench"

TINY = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale
    def forward(self, x):
        return x * self.scale  # keep this comment

rows = 4096   # benchmark size
cols = 8192
hidden = cols * 2

def get_inputs():
    return [torch.randn(rows, cols)]

def get_init_inputs():
    return [2.0]

SIZES = {"small": {"rows": 4, "cols": 8}}
'''


def test_task_id_hash_and_presets():
    task = task_from_source(TINY, 1, "7_Scale.py")
    assert task.id == "L1/7_Scale" and task.level == 1 and task.name == "7_Scale"
    assert task.sizes == {"small": {"rows": 4, "cols": 8}}
    assert len(task.hash) == 16 and task.hash != task_from_source(TINY + "\n#", 1, "7_Scale.py").hash


def test_program_rewrites_constants_and_drops_the_preset_table():
    task = task_from_source(TINY, 1, "7_Scale.py")
    small = task.program("small")
    assert "rows = 4   # benchmark size" in small and "cols = 8\n" in small
    assert "SIZES" not in small and "# keep this comment" in small
    module = task.materialise("small")
    assert module.hidden == 16  # derived constants follow the preset
    assert module.get_inputs()[0].shape == (4, 8)
    assert task.materialise("full").get_inputs.__code__  # full is the file as written


def test_unknown_preset_and_unknown_constant_are_clear_errors():
    task = task_from_source(TINY, 1, "7_Scale.py")
    with pytest.raises(TaskError, match="no size preset 'medium'"):
        task.program("medium")
    with pytest.raises(TaskError, match="no module-level integer constant named nope"):
        rewrite_constants(TINY, {"nope": 1})


def test_materialise_requires_the_three_entry_points():
    task = task_from_source("import torch\nclass Model: pass\n", 1, "1_Bad.py")
    with pytest.raises(TaskError, match="get_inputs, get_init_inputs"):
        task.materialise()


def test_bundled_suite_size_and_shape(bundled):
    levels = [t.level for t in bundled.values()]
    assert levels.count(1) >= 30 and levels.count(2) >= 15 and levels.count(3) >= 5
    for task in bundled.values():
        assert task.has_size("small") and task.solution, task.id
        assert task.id == f"L{task.level}/{task.name}"


def test_load_kernelbench_checkout_root_and_inner_folder_and_levels():
    from_root = load_tasks(FIXTURES)
    from_inner = load_tasks(FIXTURES / "KernelBench")
    assert [t.id for t in from_root] == [t.id for t in from_inner]
    assert {t.level for t in from_root} == {1, 2, 3}
    assert [t.id for t in load_tasks(FIXTURES, levels=[3])] == ["L3/4_Self_attention"]
    flat = load_tasks(FIXTURES / "KernelBench" / "level2")
    assert [t.id for t in flat] == ["L2/7_Matmul_GELU_scale"]


def test_load_dataset_exports_jsonl_and_parquet(tmp_path):
    rows = [{"code": p.read_text(), "level": 1, "name": p.stem.split("_", 1)[1], "problem_id": int(p.stem.split("_")[0])}
            for p in sorted((FIXTURES / "KernelBench" / "level1").glob("*.py"))]
    export = tmp_path / "kb.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in rows))
    tasks = load_tasks(export)
    assert [t.id for t in tasks] == ["L1/1_Relu_wide", "L1/2_Grouped_conv", "L1/3_Hardcoded_sizes"]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "kb.parquet")
    assert [t.id for t in load_tasks(tmp_path / "kb.parquet")] == [t.id for t in tasks]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"code": "x"}))
    with pytest.raises(TaskError, match="lacks level, name, problem_id"):
        load_tasks(bad)


def test_unknown_source_is_a_clear_error():
    with pytest.raises(TaskError, match="unknown task source"):
        load_tasks("no-such-suite")


def test_an_unknown_size_is_one_error_not_a_warning_per_task():
    """``size="medium"`` used to give 0 tasks and 59 warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TaskError, match="unknown size 'medium': every task has 'full' and 'small'"):
            load_tasks("bundled", size="medium")


def test_a_hub_dataset_offline_fails_at_once(monkeypatch):
    """Offline, ``hf:NAME`` used to retry downloads for half a minute before a ConnectionError."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    for flags in ("datasets.config", "huggingface_hub.constants"):  # restored after: read_hub sets them
        monkeypatch.setattr(f"{flags}.HF_HUB_OFFLINE", False)
    with pytest.raises(TaskError, match="hf:nobody/no-such-dataset: the hub cannot be reached and it is not in"):
        load_tasks("hf:nobody/no-such-dataset")


def test_scaled_constants_keep_divisibility():
    constants = {"batch_size": 64, "in_channels": 256, "out_channels": 512, "kernel_size": 3, "groups": 8,
                 "height": 512, "width": 512}
    for shift in range(0, 10):
        new = {**constants, **scaled_constants(constants, shift)}
        assert new["kernel_size"] == 3 and new["groups"] == 8  # small constants are never scaled
        assert new["in_channels"] % new["groups"] == 0 and new["out_channels"] % new["groups"] == 0
        assert new["out_channels"] % new["in_channels"] == 0 and new["height"] == new["width"]


def test_shrink_relu_wide_is_runnable_and_keeps_the_program_rules():
    task = load_tasks(FIXTURES / "KernelBench" / "level1" / "1_Relu_wide.py")[0]
    small = shrink(task)
    sizes = small.sizes["small"]
    assert sizes["dim"] < 393216 and sizes["batch_size"] < 4096
    assert sizes["dim"] / sizes["batch_size"] == pytest.approx(393216 / 4096, rel=0.5)
    report = check_task(small, "small")
    assert report.ok and report.seconds < 0.5 and report.outputs == [f"float32[{sizes['batch_size']}, {sizes['dim']}]"]


def test_shrink_grouped_conv_output_shape_follows_the_conv_formula():
    task = load_tasks(FIXTURES / "KernelBench" / "level1" / "2_Grouped_conv.py")[0]
    small = shrink(task)
    module = small.materialise("small")
    c = {**task.constants(), **small.sizes["small"]}
    assert c["in_channels"] % c["groups"] == 0 and c["out_channels"] % c["groups"] == 0
    torch.manual_seed(0)
    out = module.Model(*module.get_init_inputs())(*module.get_inputs())
    # padding 1, kernel 3, stride 1: spatial size is preserved
    assert tuple(out.shape) == (c["batch_size"], c["out_channels"], c["height"], c["width"])


def test_shrink_attention_keeps_heads_dividing_the_embedding():
    task = load_tasks(FIXTURES / "KernelBench" / "level3" / "4_Self_attention.py")[0]
    small = shrink(task)
    c = {**task.constants(), **small.sizes["small"]}
    assert c["num_heads"] == 12 and c["embed_dim"] % 12 == 0
    assert check_task(small, "small").ok


def test_sizes_written_in_get_inputs_shrink_too():
    task = load_tasks(FIXTURES / "KernelBench" / "level1" / "3_Hardcoded_sizes.py")[0]
    small = shrink(task)
    program = small.program("small")
    assert "torch.randn(65536, 65536)" not in program and "torch.randn(" in program
    assert check_task(small, "small").ok


TABLE = '''import torch
import torch.nn as nn

class Model(nn.Module):
    """A lookup table whose size is written inside the model: no constant or width sets it."""
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(4096, 4096))
    def forward(self, x):
        return x @ self.table[: x.shape[1]]

n = 64

def get_inputs():
    return [torch.randn(n, n)]

def get_init_inputs():
    return []
'''


def test_not_shrinkable_reports_why():
    task = task_from_source(TABLE, 1, "9_Table.py")
    with pytest.raises(NotShrinkable, match="too large"):
        shrink(task)
    with pytest.warns(UserWarning, match="not shrinkable"):
        loaded = load_tasks([*load_tasks(FIXTURES), task], size="small")
    assert task.id not in {t.id for t in loaded} and len(loaded) == 5


DEGENERATE = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x, y):
        return x.mean() * 0 + y.sum(dim=1)

n = 8

def get_inputs():
    return [torch.randn(n, n), torch.ones(n, n)]

def get_init_inputs():
    return []
'''


def test_check_flags_near_constant_outputs():
    report = check_task(Task("L1/x", 1, "x", DEGENERATE), "full")
    assert not report.ok and any("near-constant" in p for p in report.problems)


def test_check_flags_an_input_the_output_ignores():
    source = DEGENERATE.replace("torch.ones(n, n)", "torch.randn(n, n)")
    report = check_task(Task("L1/x", 1, "x", source), "full")
    assert report.problems == ["output does not depend on input 0: it cannot be checked"]


def test_check_reports_a_failing_reference():
    source = DEGENERATE.replace("return x.mean()", "raise RuntimeError('boom'); return x.mean()")
    report = check_task(Task("L1/x", 1, "x", source), "full")
    assert not report.ok and report.problems == ["reference failed: RuntimeError: boom"]


def test_every_bundled_reference_runs_fast_and_is_not_degenerate(bundled):
    for task in bundled.values():
        report = check_task(task, "small")
        assert report.ok, (task.id, report.problems)
        assert report.seconds < 0.5, (task.id, report.seconds)
