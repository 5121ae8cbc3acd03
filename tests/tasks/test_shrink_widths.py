"""Shrinking networks whose widths are written inside the model, per-task time limits, the offline
skip of Hugging Face tasks, and the input-dependence check."""

import functools
import os
import re

import pytest
import torch

from tasks import Budget, NotShrinkable, Task, TaskError, check_task, load_tasks, shrink
from tasks.check import check_one, check_tasks
from tasks.loaders import go_offline_if_unreachable, task_from_source
from tasks.shrink import _shifts, measure, scaled_constants
from tasks.task import rewrite_literals
from tasks.widths import find_literals

RESNET = '''import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        # grouped 3x3: 32 groups whatever the width
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, groups=32, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.down = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.down(x))  # the residual add


class Model(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.in_channels = 64  # the stem width
        self.stem = nn.Conv2d(3, self.in_channels, 3, padding=1)
        self.layer1 = self._make_layer(128, stride=1)
        self.layer2 = self._make_layer(256, stride=2)
        self.attn = nn.MultiheadAttention(256, 8, batch_first=True)
        self.fc = nn.Linear(256, num_classes)

    def _make_layer(self, out_channels, stride):
        block = Block(self.in_channels, out_channels, stride)
        self.in_channels = out_channels
        return block

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        seq = x.flatten(2).transpose(1, 2)
        seq, _ = self.attn(seq, seq, seq)
        return self.fc(seq.amax(1))


batch_size = 8
height = width = 32
num_classes = 10


def get_inputs():
    return [torch.rand(batch_size, 3, height, width)]


def get_init_inputs():
    return [num_classes]
'''

VGG = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        cfg = [64, 128, "M", 256, "M"]  # the feature widths
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, num_classes))

    def forward(self, x):
        x = self.features(x).amax((2, 3))
        return self.classifier(x)


def get_inputs():
    return [torch.rand(16, 3, 64, 64)]


def get_init_inputs():
    return [10]
'''


def _constants_only_is_too_large(task):
    """The old path (module constants alone, at their most aggressive) does not fit the budget."""
    constants = task.constants()
    fits, why = measure(task, scaled_constants(constants, _shifts(constants)[0]), Budget())
    return not fits and why.startswith("too large")


def _layers(model):
    return [type(m).__name__ for m in model.modules()]


def _geometry(model):
    return [(m.kernel_size, m.stride, m.padding, m.groups) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


@functools.lru_cache
def _shrunk(source):
    return shrink(task_from_source(source, 3, "1_Net.py"))


def _build(task, size):
    module = task.materialise(size)
    with torch.device("meta"):
        return module.Model(*module.get_init_inputs())


@pytest.mark.parametrize("source", [RESNET, VGG], ids=["resnet", "vgg"])
def test_widths_inside_the_model_shrink_with_the_architecture_intact(source):
    task = task_from_source(source, 3, "1_Net.py")
    assert _constants_only_is_too_large(task)
    small = _shrunk(source)
    assert check_task(small, "small").ok
    full, tiny = _build(task, "full"), _build(small, "small")
    assert _layers(tiny) == _layers(full) and _geometry(tiny) == _geometry(full)  # kernels, strides, groups
    assert sum(p.numel() for p in tiny.parameters()) <= Budget().max_param_elements
    for m in tiny.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert m.in_channels % m.groups == 0 and m.out_channels % m.groups == 0
            assert m.groups == 1 or m.out_channels // m.groups >= 4 or m.out_channels == m.in_channels == m.groups
        if isinstance(m, torch.nn.MultiheadAttention):
            assert m.num_heads == 8 and m.embed_dim % 8 == 0


def test_the_shrunk_program_is_the_source_with_other_numbers():
    program = _shrunk(RESNET).program("small")
    assert program != RESNET and "# grouped 3x3: 32 groups whatever the width" in program
    digitless = [re.sub(r"\d+", "N", line) for line in RESNET.splitlines()]
    assert [re.sub(r"\d+", "N", line) for line in program.splitlines()] == digitless
    assert "groups=32" in program and "nn.MultiheadAttention(" in program and ", 8, batch_first" in program


def test_literal_edits_are_part_of_the_preset_and_of_the_hash():
    task = task_from_source(VGG, 3, "2_Vgg.py")
    widths = find_literals(VGG).widths
    # the cfg list, the classifier and num_classes (its default and what get_init_inputs passes)
    assert sorted(widths.values()) == [10, 10, 64, 128, 256, 256, 1024, 1024]
    assert set(find_literals(VGG).sizes.values()) == {16, 64}  # torch.rand(16, 3, 64, 64)
    key = next(k for k, v in widths.items() if v == 1024)
    edited = task.with_sizes(small={key: 32})
    assert "nn.Linear(256, 32)" in edited.program("small") and edited.program("full") == VGG
    assert edited.hash != task.hash != task.with_sizes(small={key: 64}).hash
    assert task.with_sizes(small={"batch": 2}).hash == task.hash  # named presets hash as before
    with pytest.raises(TaskError, match="no integer literal"):
        rewrite_literals(VGG, {"x@1:0": 3})


def test_a_task_whose_size_is_not_a_width_says_why_in_one_line():
    source = RESNET.replace("        self.fc = nn.Linear(256, num_classes)",
                            "        self.fc = nn.Linear(256, num_classes)\n"
                            "        self.table = nn.Parameter(torch.randn(2048, 2048))  # not a layer width")
    assert "self.table" in source
    with pytest.raises(NotShrinkable) as err:
        shrink(task_from_source(source, 3, "3_Table.py"))
    assert "too large" in str(err.value) and "\n" not in str(err.value)


SLEEPY = """import time, torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        time.sleep(SECONDS)
        return torch.relu(x)

def get_inputs():
    return [torch.randn(4, 4)]

def get_init_inputs():
    return []
"""


def test_the_time_limit_reports_a_slow_task_and_goes_on():
    slow = task_from_source(SLEEPY.replace("SECONDS", "30"), 1, "1_Sleep.py")
    fast = task_from_source(SLEEPY.replace("SECONDS", "0"), 1, "2_Fast.py")
    reports = list(check_tasks([slow, fast], "full", timeout_s=0.5))
    assert reports[0].problems == ["timed out after 0.5 s"] and not reports[0].ok
    assert reports[1].task_id == "L1/2_Fast" and reports[1].ok


HUB = '''import torch
from transformers import AutoConfig, AutoModel

raise RuntimeError("executed: the check must decide from the source")

class Model(torch.nn.Module):
    def __init__(self, name):
        super().__init__()
        self.model = AutoModel.from_pretrained(name)

model_name = "no-such-org/no-such-model"

def get_inputs():
    return [torch.randint(0, 10, (1, 8))]

def get_init_inputs():
    return [model_name]
'''


def test_hub_tasks_are_skipped_at_once_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")  # so the test restores what the code sets
    task = task_from_source(HUB, 4, "1_Hub.py")
    assert check_one(task, "small").problems == ["skipped: needs the Hugging Face hub (offline)"]
    with pytest.warns(UserWarning, match="L4/1_Hub: needs the Hugging Face hub"):
        assert load_tasks([task], size="small") == []
    go_offline_if_unreachable()
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


SIGMOID_SUM = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.linear = nn.Linear(n, n)
    def forward(self, x):
        return torch.sigmoid(self.linear(x)).sum(dim=1, keepdim=True)

def get_inputs():
    return [torch.rand(2, 256)]

def get_init_inputs():
    return [256]
'''


def test_a_redrawn_input_keeps_its_distribution():
    """KernelBench L2/56: a sum of 256 sigmoids is ~128, so rtol allows 1.3. Replacing the uniform
    input by ``randn_like`` moved it by 0.7 (flagged); a fresh ``torch.rand`` moves it by 2.2."""
    assert check_task(Task("L2/56", 2, "56", SIGMOID_SUM), "full").ok


def test_a_fixed_input_is_not_flagged():
    """An input ``get_inputs`` does not draw at random (fixed indices) has nothing to vary: a redraw
    equals it, which must not read as the output ignoring it."""
    source = SIGMOID_SUM.replace("return [torch.rand(2, 256)]", "return [torch.rand(2, 256), torch.arange(0, 256, 2)]")
    source = source.replace("def forward(self, x):", "def forward(self, x, idx):").replace(
        "return torch.sigmoid(self.linear(x))", "return torch.sigmoid(self.linear(x)).index_select(1, idx)")
    assert check_task(Task("L2/x", 2, "x", source), "full").ok


def test_a_mean_over_many_elements_follows_its_inputs():
    """KernelBench L1/94 (MSE): a fresh uniform draw leaves the mean within tolerance, yet the loss
    follows its inputs: values from another distribution move it."""
    source = SIGMOID_SUM.replace("return torch.sigmoid(self.linear(x)).sum(dim=1, keepdim=True)",
                                 "return ((x - y) ** 2).mean()").replace("def forward(self, x):",
                                                                         "def forward(self, x, y):")
    source = source.replace("return [torch.rand(2, 256)]",  # as L1/94 draws them
                            "scale = torch.rand(())\n    return [torch.rand(64, 256) * scale, torch.rand(64, 256)]")
    assert check_task(Task("L1/94", 1, "94", source), "full").ok
