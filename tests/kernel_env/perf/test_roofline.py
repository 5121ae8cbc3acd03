"""The roofline model on recorded work: pairs whose order on a GPU is not in doubt, modelled in-process
with the recorder at benchmark-like sizes; the extrapolation attacks; validation of forged records.

Each ranking test prints its modelled times (``-s`` shows them)."""

import copy

import pytest
import torch

from kernel_env.inside.work import AtenWork, KernelWork, Sampling, record_call
from kernel_env.perf import RecordError, modelled, parse_records, price
from kernel_env.perf.modelled import WORK_BELOW_OUTPUT
from kernel_env.perf.scaling import LAUNCHES_DIFFER, WORK_INCONSISTENT, cross_check, ratios, scale
from tests.kernel_env.inside import work_kernels as K

SIZE = (4096, 4096)  # 64 MiB of fp32 per tensor: input plus output exceed every part's L2

#: In-process kernels run on the interpreter as the worker patches it (Triton 3.6 needs its loop bounds).
pytestmark = pytest.mark.usefixtures("compat")


SAMPLE = Sampling(seed=7)


def record(fn, *args, sample=SAMPLE):
    """What the sandbox would send: the torch ops and the kernel launches of one full-size call."""
    return record_call(fn, args, sample).records


def trace(fn, *shapes):
    """A reference traced on meta tensors, as ``trace_reference`` does for a task."""
    with torch.device("meta"):
        inputs = [torch.randn(s) for s in shapes]
        with torch.no_grad(), AtenWork() as ops:
            fn(*inputs)
    return ops.records


def us(fn, *args, **kw) -> float:
    return price(record(fn, *args, **kw)).runtime_us


@pytest.fixture(scope="module")
def x():
    return torch.randn(*SIZE)


def report(**times):
    print(" ".join(f"{k}={v:.1f}us" for k, v in times.items()))


# -- pairs whose GPU order is not in doubt -----------------------------------------------------------

def test_tiny_blocks_cost_more_than_good_blocks(x):
    one, tiny, good = (us(K.relu, x, block) for block in (1, 16, 1024))
    report(block1=one, block16=tiny, block1024=good)
    assert one > 5 * tiny and tiny > 5 * good
    assert price(record(K.relu, x, 16)).bound == "launch" and price(record(K.relu, x, 1024)).bound == "memory"


def test_a_naive_scalar_matmul_is_slower_than_a_tiled_dot(x):
    a, b = x, torch.randn(*SIZE)
    naive = us(K.naive_matmul, a, b)
    tiled = us(K.tiled_matmul, a, b, sample=Sampling(seed=7, singles=2, run=3))
    reference = price(trace(torch.matmul, SIZE, SIZE)).runtime_us
    report(naive=naive, tiled=tiled, torch_fp32=reference)
    assert naive > 50 * tiled
    assert tiled < reference  # TF32 tensor cores against cuBLAS FP32, Triton's default against torch's


def test_a_fused_kernel_beats_the_same_ops_as_separate_kernels(x):
    fused, separate = us(K.fused, x), us(K.separate, x)
    report(fused=fused, separate=separate)
    assert separate > 2.5 * fused


def test_loading_the_input_twice_far_apart_costs_more_than_once(x):
    once, twice_far = us(K.launch, K.once_double_kernel, x), us(K.launch, K.twice_far_kernel, x)
    twice_same = us(K.launch, K.twice_same_kernel, x)
    report(once=once, twice_far_apart=twice_far, twice_in_one_program=twice_same)
    assert twice_far > 1.2 * once
    assert twice_same == pytest.approx(once, rel=0.02)  # a program's own re-read is an L1 hit


def test_the_reference_plus_a_copy_kernel_is_slower_than_the_reference(x):
    reference = trace(torch.relu, SIZE)
    with_copy = modelled(record(lambda t: K.launch(K.copy_kernel, torch.relu(t)), x), reference)
    honest = modelled(record(K.relu, x), reference)
    report(reference=with_copy.ref_runtime_us, relu_then_copy=with_copy.runtime_us, relu_kernel=honest.runtime_us)
    assert with_copy.speedup < 0.6 and honest.speedup == pytest.approx(1.0, abs=0.1)
    assert with_copy.to_dict().keys() >= {"gpu", "runtime_us", "ref_runtime_us", "speedup", "bound", "rows"}
    assert "copy_kernel" in with_copy.explain() and with_copy.gpu == "H100"


# -- extrapolation attacks ---------------------------------------------------------------------------

N = 1 << 18


@pytest.fixture(scope="module")
def small():
    return torch.randn(1 << 18)


@pytest.mark.parametrize("kernel", [K.first_program_does_all_kernel, K.last_program_does_all_kernel,
                                    K.persistent_relu_kernel])
def test_work_hidden_in_few_programs_is_priced_as_slow(small, kernel):
    grid = (4,) if kernel is K.persistent_relu_kernel else None
    honest = us(K.relu, small)
    attack = price(record(K.launch, kernel, small, grid))
    report(honest=honest, attack=attack.runtime_us)
    assert attack.runtime_us > 2 * honest and attack.bound == "memory"  # 1 MiB: the honest kernel is mostly launch


def test_a_missed_heavy_program_is_caught_by_the_small_size_cross_check():
    kernel = K.middle_program_does_all_kernel
    small_x, full_x = torch.randn(16 * 1024), torch.randn(N)
    with KernelWork() as small_launches:
        K.launch(kernel, small_x)
    blind = record(K.launch, kernel, full_x)  # no hints, and the random draw misses program 128
    assert parse_records(blind)[-1].bytes_loaded < full_x.nbytes / 100
    grow = ratios(trace(torch.relu, small_x.shape), trace(torch.relu, full_x.shape))
    scaled = scale(small_launches.records, grow)
    chosen, flags = cross_check(blind, scaled)
    assert WORK_INCONSISTENT in flags and chosen == scaled
    hinted = record(K.launch, kernel, full_x, sample=Sampling(seed=7, hints=tuple(small_launches.hints())))
    chosen, flags = cross_check(hinted, scaled)
    assert flags == [] and parse_records(chosen)[-1].bytes_loaded == full_x.nbytes


def test_scaled_small_records_match_a_full_size_recording(x):
    small_x = torch.randn(16, 1024)
    with KernelWork() as launches:
        K.relu(small_x)
    grow = ratios(trace(torch.relu, small_x.shape), trace(torch.relu, SIZE))
    (scaled,) = scale(launches.records, grow)
    (full,) = [r for r in parse_records(record(K.relu, x)) if r.kind == "kernel"]
    assert scaled.extrapolation == "scaled" and scaled.programs == full.programs
    assert scaled.bytes_loaded == full.bytes_loaded and scaled.unique_bytes_stored == full.unique_bytes_stored
    assert price([scaled]).runtime_us == pytest.approx(price([full]).runtime_us, rel=0.02)


def test_a_kernel_sequence_that_changes_with_the_size_is_flagged(x):
    small_x = torch.randn(16, 1024)
    with KernelWork() as launches:
        K.relu(small_x)
    grow = ratios(trace(torch.relu, small_x.shape), trace(torch.relu, SIZE))
    _, flags = cross_check(record(K.separate, x), scale(launches.records, grow))
    assert LAUNCHES_DIFFER in flags


def test_records_that_do_not_write_the_outputs_are_floored():
    reference = trace(torch.relu, SIZE)
    hollow = modelled([], reference, output_bytes=SIZE[0] * SIZE[1] * 4)
    assert WORK_BELOW_OUTPUT in hollow.flags and hollow.speedup < 2.5 and hollow.rows[-1].kind == "floor"


# -- the pricer itself -------------------------------------------------------------------------------

def torch_op(**changes):
    op = {"kind": "torch", "name": "aten.relu.default", "category": "compute", "op_class": "elementwise",
          "flops": 1024, "bytes_read": 4096, "bytes_written": 4096, "dtype": "float32", "precision": "fp32",
          "count": 1}
    return {**op, **changes}


def test_pricing_is_deterministic_and_views_cost_nothing(x):
    records = record(K.separate, x)
    assert price(records) == price(copy.deepcopy(records))
    view = torch_op(name="aten.view.default", category="glue", op_class="view", flops=0, bytes_read=0,
                    bytes_written=0)
    assert price([view]).rows == () and price([view]).runtime_us == 0


def test_a_tiny_op_is_launch_bound_and_a_big_matmul_compute_bound():
    assert price([torch_op()]).bound == "launch"
    big = torch_op(name="aten.mm.default", op_class="matmul", flops=2 * 8192 ** 3, bytes_read=2 * 8192 ** 2 * 2,
                   bytes_written=8192 ** 2 * 2, dtype="float16", precision="fp16")
    breakdown = price([big], "A100")
    assert breakdown.bound == "compute" and breakdown.gpu == "A100"
    assert breakdown.runtime_us == pytest.approx(2 * 8192 ** 3 / (312e12 * 0.75) * 1e6 + 3, rel=1e-6)


@pytest.mark.parametrize("forge", [
    lambda r: r.update(flops=-1), lambda r: r.update(flops=float("nan")), lambda r: r.update(flops=True),
    lambda r: r.update(flops=1e30), lambda r: r.update(extra=1), lambda r: r.pop("dtype"),
    lambda r: r.update(kind="gpu"), lambda r: r.update(name="x" * 500), lambda r: r.update(precision="fp4"),
    lambda r: r.update(category="free"), lambda r: r.update(count=1.5),
])
def test_forged_torch_records_are_refused(forge):
    raw = torch_op()
    forge(raw)
    with pytest.raises(RecordError):
        price([raw])


def test_forged_kernel_records_are_refused(x):
    (good,) = [r for r in record(K.relu, x) if r["kind"] == "kernel"]
    parse_records([good])
    for forge in (lambda r: r.update(grid=[1, 2]), lambda r: r.update(num_warps=0),
                  lambda r: r.update(executed=r["programs"] + 1), lambda r: r.update(dot_flops={"fp4": 1.0}),
                  lambda r: r.update(dot_flops=[1.0]), lambda r: r.update(bytes_loaded="1"),
                  lambda r: r.update(extrapolation="guessed")):
        raw = copy.deepcopy(good)
        forge(raw)
        with pytest.raises(RecordError):
            parse_records([raw])
    with pytest.raises(RecordError):
        parse_records([good] * 3, max_records=2)
    with pytest.raises(RecordError):
        parse_records({"records": [good]})
