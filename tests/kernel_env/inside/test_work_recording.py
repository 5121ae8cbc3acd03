"""Work recording inside the sandbox: torch ops (real and meta tensors) and interpreted kernel launches,
including the full-size sampling and the attacks on it (work hidden in one program, grids that change)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernel_env.inside import work
from kernel_env.inside.work import BUILDER_HOOKS, AtenWork, KernelWork, Sampling, record_call, trace_reference
from tests.kernel_env.inside import work_kernels as K

#: In-process kernels run on the interpreter as the worker patches it (Triton 3.6 needs its loop bounds).
pytestmark = pytest.mark.usefixtures("compat")


def aten(fn, device="cpu", **kw):
    with torch.device(device), torch.no_grad(), AtenWork(**kw) as work:
        out = fn()
    return work.records, out


def kernels(fn, *args, sample=None):
    with KernelWork(sample=sample) as work:
        out = fn(*args)
    return work, out


def essentials(records):
    return [(r["name"], r["category"], r["flops"], r["bytes_read"], r["bytes_written"]) for r in records]


# -- torch ops ---------------------------------------------------------------------------------------

CASES = {
    "matmul": (lambda: None, lambda m: torch.matmul(torch.randn(64, 96), torch.randn(96, 32))),
    "conv": (lambda: nn.Conv2d(3, 8, 3, padding=1), lambda m: m(torch.randn(2, 3, 16, 16))),
    "conv_transpose": (lambda: nn.ConvTranspose2d(8, 4, 3, stride=2), lambda m: m(torch.randn(2, 8, 9, 9))),
}


@pytest.mark.parametrize("case", CASES)
def test_meta_tensors_give_the_same_work_as_real_ones(case):
    build, run = CASES[case]

    def on(device):
        with torch.device(device):
            module = build()
        return aten(lambda: run(module), device)[0]

    real, meta = on("cpu"), on("meta")
    assert essentials(real) == essentials(meta)
    assert sum(r["flops"] for r in real) > 0


def test_matmul_and_conv_flops_are_torchs_formulas():
    records, _ = aten(lambda: torch.mm(torch.randn(64, 96), torch.randn(96, 32)), "meta")
    (mm,) = [r for r in records if r["op_class"] == "matmul"]
    assert mm["flops"] == 2 * 64 * 96 * 32 and mm["bytes_read"] == (64 * 96 + 96 * 32) * 4
    with torch.device("meta"):
        conv = nn.Conv2d(3, 8, 3, padding=1)
    records, _ = aten(lambda: conv(torch.randn(2, 3, 16, 16)), "meta")
    (c,) = [r for r in records if r["op_class"] == "conv"]
    assert c["flops"] == 2 * (2 * 8 * 16 * 16) * (3 * 3 * 3)  # 2 x outputs x (Cin x kh x kw)
    assert c["precision"] == "tf32"  # cuDNN's default for fp32; mm stays fp32 unless torch's flags say otherwise
    assert mm["precision"] == "fp32"


def test_glue_moves_bytes_but_computes_nothing():
    x = torch.randn(256, 128)
    records, _ = aten(lambda: (x.view(128, 256), x.t(), x.t().contiguous(), torch.empty_like(x), torch.zeros(256, 128)))
    by_name = {r["name"]: r for r in records}
    for view in ("aten.view.default", "aten.t.default", "aten.empty_like.default"):
        assert by_name[view]["category"] == "glue" and by_name[view]["bytes_read"] + by_name[view]["bytes_written"] == 0
    copy = by_name["aten.clone.default"]
    assert copy["category"] == "glue" and copy["flops"] == 0 and copy["bytes_read"] == copy["bytes_written"] == x.nbytes
    zeros = by_name["aten.zeros.default"]
    assert zeros["bytes_read"] == 0 and zeros["bytes_written"] == x.nbytes


def test_a_broadcast_operand_is_read_once():
    x, bias = torch.randn(512, 256), torch.randn(256)
    records, _ = aten(lambda: x + bias)
    (add,) = records
    assert add["category"] == "compute" and add["flops"] == x.numel()
    assert add["bytes_read"] == x.nbytes + bias.nbytes and add["bytes_written"] == x.nbytes


def test_attention_is_one_fused_op_at_any_size():
    def attention(causal):
        q, k, v = (torch.randn(2, 4, 128, 64) for _ in range(3))
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    for device in ("cpu", "meta"):
        records, _ = aten(lambda: attention(False), device)
        (op,) = [r for r in records if r["category"] == "compute"]
        assert op["op_class"] == "attention" and op["flops"] == 4 * 2 * 4 * 128 * 128 * 64
        assert op["bytes_read"] == 3 * 2 * 4 * 128 * 64 * 4 and op["bytes_written"] == 2 * 4 * 128 * 64 * 4
    causal, _ = aten(lambda: attention(True), "meta")
    assert [r["flops"] for r in causal if r["category"] == "compute"] == [op["flops"] // 2]


def test_elided_ops_return_zeros_and_the_same_record():
    a, b = torch.randn(128, 64), torch.randn(64, 32)
    real, out = aten(lambda: torch.mm(a, b))
    elided, zeros = aten(lambda: torch.mm(a, b), elide=True)
    assert essentials(real) == essentials(elided)
    assert zeros.shape == out.shape and not zeros.any()
    _, y = aten(lambda: torch.ones(4).add_(1.0), elide=True)  # mutating ops still run
    assert y.tolist() == [2.0] * 4


def test_the_reference_traces_at_the_full_benchmark_size(bundled):
    module = bundled["L1/1_Square_matmul"].materialise("full")
    trace = trace_reference(module, init_seed=0, seed=1)
    (mm,) = trace.records
    assert mm["flops"] == 2 * 4096 ** 3 and mm["bytes_written"] == trace.output_bytes == 4096 * 4096 * 4


# -- kernel launches ---------------------------------------------------------------------------------

def test_only_active_lanes_move_bytes():
    x = torch.randn(1000)
    work, out = kernels(K.relu, x, 256)
    assert torch.equal(out, x.relu())
    (rec,) = work.records
    assert rec["name"] == "relu_kernel" and rec["programs"] == 4 == rec["executed"] and rec["extrapolation"] == "full"
    assert rec["bytes_loaded"] == rec["bytes_stored"] == 4000
    assert rec["unique_bytes_loaded"] == rec["unique_bytes_stored"] == 4000  # 125 whole sectors each
    assert rec["alu_ops"] > 1000 and rec["dot_flops"] == {} and rec["num_warps"] == 4


def test_strided_loads_cost_whole_sectors_and_neighbours_share_them():
    a, b = torch.randn(12, 48), torch.randn(48, 24)
    work, c = kernels(K.naive_matmul, a, b)
    assert torch.allclose(c, a @ b, atol=1e-4)
    (rec,) = work.records
    rows = cols = 12 * 48 * 24 * 4  # a row of A and a column of B per output element
    assert rec["bytes_loaded"] == rows + cols
    assert rec["access_bytes_loaded"] >= rows + 8 * cols  # a column costs a 32-byte sector per element
    assert rec["unique_bytes_loaded"] == a.nbytes + b.nbytes
    assert rec["near_reuse_bytes"] > 0.5 * rec["sector_bytes_loaded"]


def test_dot_flops_and_their_precision():
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    work, c = kernels(K.tiled_matmul, a, b)
    assert torch.allclose(c, a @ b, atol=1e-1)
    (rec,) = work.records
    assert rec["dot_flops"] == {"tf32": 2 * 64 ** 3}  # Triton's default input precision for fp32
    assert rec["unique_bytes_loaded"] == a.nbytes + b.nbytes and rec["unique_bytes_stored"] == c.nbytes


def test_recording_installs_and_uninstalls_cleanly():
    from triton.runtime import interpreter

    builder, executor, apply = interpreter.interpreter_builder, interpreter.GridExecutor, interpreter.ReduceScanOpInterface.apply
    before = set(vars(builder))  # attribute names: grid_dim/grid_idx values change with every launch
    x = torch.randn(3000)
    with KernelWork() as work:
        with pytest.raises(RuntimeError):
            KernelWork().__enter__()
        K.relu(x, 512)
        assert interpreter.GridExecutor is not executor
    assert set(vars(builder)) == before and interpreter.GridExecutor is executor
    assert interpreter.ReduceScanOpInterface.apply is apply
    assert not set(BUILDER_HOOKS) & set(vars(builder))
    assert torch.equal(K.relu(x, 512), x.relu()) and len(work.records) == 1  # nothing recorded after exit


def test_a_launch_that_raises_is_not_recorded():
    with KernelWork() as work, pytest.raises(TypeError):
        K.relu_kernel[(1,)](torch.randn(8), torch.empty(8), BLOCK=8)  # n is missing
    assert work.records == []


def test_a_sample_counts_a_uniform_kernel_exactly():
    x = torch.randn(300_001)  # 1172 programs, the last one partial
    full, _ = kernels(K.relu, x, 256)
    sampled, _ = kernels(K.relu, x, 256, sample=Sampling(seed=3))
    (f,), (s,) = full.records, sampled.records
    assert s["extrapolation"] == "sampled" and s["executed"] < 40 and s["programs"] == f["programs"] == 1172
    for key in ("bytes_loaded", "bytes_stored", "sector_bytes_loaded", "unique_bytes_loaded", "unique_bytes_stored",
                "alu_ops"):
        assert s[key] == pytest.approx(f[key], rel=1e-9), key
    assert f["bytes_loaded"] == x.nbytes


N_ATTACK = 1 << 18  # 256 programs of 1024: sampled; program-0 loops stay short on the interpreter


@pytest.mark.parametrize("kernel", [K.first_program_does_all_kernel, K.last_program_does_all_kernel])
def test_work_in_the_first_or_last_program_is_counted_once(kernel):
    x = torch.randn(N_ATTACK)
    work, _ = kernels(K.launch, kernel, x, sample=Sampling(seed=5))
    (rec,) = work.records
    assert rec["extrapolation"] == "sampled" and rec["programs"] == 256
    assert rec["bytes_loaded"] == x.nbytes and rec["bytes_stored"] == x.nbytes  # not multiplied by the grid
    assert rec["max_program_bytes"] >= 2 * x.nbytes  # one program moves it all: the serial limit prices that


def test_a_heavy_program_seen_at_the_small_size_is_sampled_at_the_full_size():
    small, _ = kernels(K.launch, K.middle_program_does_all_kernel, torch.randn(16 * 1024))
    hints = small.hints()
    assert hints == [{"name": "middle_program_does_all_kernel", "ordinal": 0, "programs": 16, "heavy": [8]}]
    x = torch.randn(N_ATTACK)
    work, _ = kernels(K.launch, K.middle_program_does_all_kernel, x, sample=Sampling(seed=5, hints=tuple(hints)))
    (rec,) = work.records
    assert rec["bytes_loaded"] == x.nbytes and rec["extrapolation"] == "sampled"


def test_a_grid_that_changes_with_the_size_is_recorded_as_launched():
    x = torch.randn(N_ATTACK)
    work, out = kernels(K.launch, K.persistent_relu_kernel, x, (4,), sample=Sampling(seed=5))
    assert torch.equal(out, x.relu())  # four programs: under full_grid, so all of them ran
    (rec,) = work.records
    assert rec["programs"] == rec["executed"] == 4 and rec["extrapolation"] == "full"
    assert rec["bytes_loaded"] == x.nbytes and rec["max_program_bytes"] == pytest.approx(2 * x.nbytes / 4, rel=0.01)


def test_launches_past_the_cap_are_merged_per_kernel():
    x = torch.randn(512)
    with KernelWork(max_launches=2) as work:
        for _ in range(5):
            K.relu(x, 256)
    assert [r["count"] for r in work.records] == [1, 1, 3]
    assert work.records[2]["bytes_loaded"] == 3 * x.nbytes and work.records[2]["programs"] == 6


def test_a_full_size_sample_is_cheap():
    x = torch.randn(4096, 4096)
    work, _ = kernels(K.relu, x, 1, sample=Sampling(seed=1))  # 16.7 million programs of one element
    (rec,) = work.records
    assert rec["programs"] == x.numel() and rec["executed"] < 40
    assert rec["bytes_loaded"] == x.nbytes and math.isclose(rec["unique_bytes_loaded"], x.nbytes)


def test_a_program_that_touches_too_much_stops_tracking_distinct_sectors(monkeypatch):
    monkeypatch.setattr(work, "PROGRAM_SECTORS", 100)  # memory stays bounded: ~128 MiB of data per program
    x = torch.randn(N_ATTACK)
    with KernelWork(sample=Sampling(seed=5)) as launches:
        K.launch(K.first_program_does_all_kernel, x)
    (rec,) = launches.records
    assert rec["bytes_loaded"] == x.nbytes and rec["sector_bytes_loaded"] == rec["access_bytes_loaded"] == x.nbytes
    assert rec["unique_bytes_loaded"] == x.nbytes  # counted as distinct, uncapped: an upper bound


def test_record_call_returns_both_sides_and_the_hints():
    x = torch.randn(16 * 1024)
    recording = record_call(lambda t: K.launch(K.middle_program_does_all_kernel, torch.relu(t)), [x])
    assert [r["kind"] for r in recording.records] == ["torch", "torch", "kernel"]  # relu, empty_like, the launch
    assert recording.hints[0]["heavy"] == [8]
